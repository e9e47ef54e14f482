"""No rule keeps the name on a dead instance (issue: unsettled standby, hold-down).

Three instances behind the name: ca-a (active), ca-b (healthy), and a last-preferred ca-c in
front of a third Pebble through a fault proxy that makes its check never settle: it always
answers 429 (the probe's own trouble: inconclusive), or its directory alternates good and 500
(with rise 2, fall 2 neither streak completes). Killing ca-a must move the name to ca-b within
detection + the settle window; ca-c is then UNHEALTHY (inconclusive, or unsettled), and says so. And a second, independent failure inside hold-down moves the
name again at once: hold-down limits moves away from a healthy instance only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnsfailover.config.models import Checks
from lab import Lab
from lab.scenario import NAME, DaemonProcess, target_of, wait_for, write_config

A, B = "ca-a.example.test.", "ca-b.example.test."
CHECKS = {"interval": "1s", "timeout": "800ms", "rise": 2, "fall": 2}


def _instances(daemon: DaemonProcess) -> dict[str, Any]:
    return daemon.health()["services"]["acme"]["instances"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["rate_limited", "alternate"])
def test_a_standby_that_never_settles_does_not_keep_the_name_on_a_dead_active(
    lab: Lab, tmp_path: Path, mode: str
) -> None:
    a, b, c = lab.pebble("ca-a"), lab.pebble("ca-b"), lab.pebble("ca-c")
    proxy = lab.fault_proxy(c)
    proxy.mode = mode
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b, c],
                          {"checks": CHECKS, "hold_down": "5m"})  # fmt: skip
    config.write_text(config.read_text().replace(c.directory_url, proxy.directory_url))
    daemon = lab.daemon(config)
    wait_for(lambda: _instances(daemon)["ca-a"]["state"] == "healthy", 10, "ca-a healthy")
    a.kill()
    window = Checks.model_validate(CHECKS).settle_window
    detection = 2 * 1.0 + 0.8
    wait_for(lambda: all(s.rrset(NAME, "CNAME") == {B} for s in bind.servers),
             detection + window + 3, "the name on ca-b")  # fmt: skip
    # Never settled, and past the settle window that is a verdict: unhealthy, and it says why
    # in health.json (status), the audit and the metrics.
    why = {"rate_limited": "inconclusive for", "alternate": "unsettled for"}[mode]
    wait_for(lambda: _instances(daemon)["ca-c"]["state"] == "unhealthy", window + 10, "verdict")
    assert why in _instances(daemon)["ca-c"]["reason"]
    event = {"rate_limited": "inconclusive", "alternate": "unsettled"}[mode]
    wait_for(lambda: any(e["event"] == event and e["instance"] == "ca-c"
                         for e in daemon.audit()), 10, "the audit entry")  # fmt: skip
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert (entry["from"], entry["to"]) == ("ca-a", "ca-b")
    if mode == "alternate":
        assert "of the last" in _instances(daemon)["ca-c"]["reason"]


def test_a_second_failure_inside_hold_down_moves_at_once(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          {"checks": CHECKS, "hold_down": "1m", "failback": "manual"})  # fmt: skip
    daemon = lab.daemon(config)
    wait_for(lambda: _instances(daemon)["ca-a"]["state"] == "healthy", 10, "ca-a healthy")
    a.kill()
    wait_for(lambda: all(s.rrset(NAME, "CNAME") == {B} for s in bind.servers), 10, "on ca-b")
    a.start()
    wait_for(lambda: _instances(daemon)["ca-a"]["state"] == "healthy", 10, "ca-a back")
    assert bind.primary.rrset(NAME, "CNAME") == {B}  # sticky: no failback
    b.kill()  # seconds after the first flip, well inside the 1 minute hold-down
    took = wait_for(lambda: all(s.rrset(NAME, "CNAME") == {A} for s in bind.servers), 10,
                    "the name back on ca-a")  # fmt: skip
    assert took < 2 * 1.0 + 0.8 + 3  # detection, not hold-down
    moves = [(e["from"], e["to"]) for e in daemon.audit() if e["event"] == "failover"]
    wait_for(lambda: len([e for e in daemon.audit() if e["event"] == "failover"]) == 2, 5,
             "both moves audited")  # fmt: skip
    moves = [(e["from"], e["to"]) for e in daemon.audit() if e["event"] == "failover"]
    assert moves == [("ca-a", "ca-b"), ("ca-b", "ca-a")]
    assert not any(e["event"] == "refusal" for e in daemon.audit())
    assert target_of(a) == A


def test_an_active_that_answers_429_for_ever_loses_the_name(lab: Lab, tmp_path: Path) -> None:
    """Overloaded is inconclusive, not healthy: nobody can confirm the active, so after the
    bound (`inconclusive_after`, default the settle window) it is UNHEALTHY and the name moves
    to the healthy standby."""
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    proxy = lab.fault_proxy(a)
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b], {"checks": CHECKS})
    config.write_text(config.read_text().replace(a.directory_url, proxy.directory_url))
    daemon = lab.daemon(config)
    wait_for(lambda: _instances(daemon)["ca-a"]["state"] == "healthy", 10, "ca-a healthy")
    proxy.mode = "rate_limited"
    bound = Checks.model_validate(CHECKS).inconclusive_bound
    wait_for(lambda: all(s.rrset(NAME, "CNAME") == {B} for s in bind.servers),
             bound + 2 * 1.0 + 0.8 + 3, "the name on ca-b")  # fmt: skip
    wait_for(lambda: any(e["event"] == "failover" for e in daemon.audit()), 5, "the audit")
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert (entry["from"], entry["to"]) == ("ca-a", "ca-b")
    assert "inconclusive for" in entry["health"]["ca-a"]["reason"]
