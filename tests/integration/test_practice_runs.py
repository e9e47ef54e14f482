"""Practice runs end to end: the daemon, two Pebble CAs, BIND primary + secondary (the lab).

The rules about a run's time (its end, a failed check, a restart) are proven on the simulated
clock (tests/test_practice_clock.py); here, once, the wiring: `drill` reaches the running
daemon, both switches are served by every BIND server and verified as a client, and a gate's
refusal is exit 3 with nothing changed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dnsfailover.cli.main import main
from lab import Lab
from lab.bind import BindPair
from lab.scenario import NAME, DaemonProcess, wait_for, write_config

A, B = "ca-a.example.test.", "ca-b.example.test."

pytestmark = pytest.mark.integration


class Scene:
    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.a, self.b = lab.pebble("ca-a"), lab.pebble("ca-b")
        self.bind: BindPair = lab.bind()
        self.lab = lab
        self.config = write_config(tmp_path / "config.yaml", lab, self.bind, [self.a, self.b],
                                   {"practice": {"outcome_command": {"argv": ["true"]}}})  # fmt: skip

    def serves(self, target: str) -> bool:
        return all(s.rrset(NAME, "CNAME") == {target} for s in self.bind.servers)

    def daemon(self) -> DaemonProcess:
        daemon = self.lab.daemon(self.config)
        wait_for(lambda: _active(daemon) == "ca-a", 15, "settled on ca-a")
        wait_for(lambda: _state(daemon, "ca-b") == "healthy", 15, "ca-b healthy")
        return daemon

    def drill(self, *args: str) -> int:
        return main(["drill", "acme", *args, "-c", str(self.config)])


def _active(daemon: DaemonProcess) -> Any:
    health = daemon.health()
    return health and health["services"]["acme"]["active"]


def _state(daemon: DaemonProcess, instance: str) -> Any:
    health = daemon.health()
    return health and health["services"]["acme"]["instances"][instance]["state"]


@pytest.fixture
def scene(lab: Lab, tmp_path: Path) -> Iterator[Scene]:
    yield Scene(lab, tmp_path)


def test_a_run_to_b_is_served_everywhere_verified_and_returns(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scene.drill("--to", "ca-b", "--for", "4s") == 2  # no daemon: nobody brings it back
    assert "no dnsfailover daemon runs" in capsys.readouterr().err
    daemon = scene.daemon()
    assert scene.drill("--to", "ca-b", "--for", "4s", "--reason", "e2e") == 0
    assert scene.serves(B)  # exit 0: the move is served by every authority
    wait_for(lambda: scene.serves(A), 30, "the return to ca-a on both servers")
    wait_for(lambda: any(e["event"] == "practice_ended" for e in daemon.audit()), 30, "its end")
    ended = next(e for e in daemon.audit() if e["event"] == "practice_ended")
    assert ended["outcome"] == "SUCCEEDED", ended
    steps = sorted(ended["timeline"], key=ended["timeline"].get)  # the audit sorts its keys
    for leg in ("go", "back"):
        assert [s for s in steps if s.startswith(leg)] == [
            f"{leg}.decided", f"{leg}.written", f"{leg}.served", f"{leg}.verified"]  # fmt: skip
    moves = [e for e in daemon.audit() if e["event"] in ("practice", "practice_return")]
    assert [(e["to"], e["propagation_complete"]) for e in moves] == [("ca-b", True),
                                                                    ("ca-a", True)]  # fmt: skip
    capsys.readouterr()
    assert scene.drill("--report") == 0
    report = capsys.readouterr().out
    assert "SUCCEEDED" in report and "outcome_command after_move: passed" in report
    assert "outcome_command before_return: passed" in report


def test_a_gate_refuses_with_exit_3_and_changes_nothing(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = scene.daemon()
    scene.b.kill()
    wait_for(lambda: _state(daemon, "ca-b") == "unhealthy", 15, "ca-b unhealthy")
    assert scene.drill("--to", "ca-b", "--for", "4s", "--ignore-window") == 3
    out = capsys.readouterr().out
    assert "REFUSED — health: target ca-b is unhealthy" in out
    assert scene.serves(A)
    refused = [e for e in daemon.audit() if e["event"] == "practice_refused"]
    assert len(refused) == 1 and refused[0]["why"].startswith("health: target ca-b")


def test_a_scheduled_run_starts_when_due_and_not_on_a_blocked_date(scene: Scene) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    scene.config = write_config(scene.config, scene.lab, scene.bind, [scene.a, scene.b],
                                {"practice": {"every": "1h", "duration": "3s",
                                              "blocked_dates": [today]}})  # fmt: skip
    daemon = scene.daemon()
    settled = daemon.health()["updated"]  # type: ignore[index]
    wait_for(lambda: daemon.health()["updated"] > settled + 6, 15, "six seconds of ticks")  # type: ignore[index]
    assert not [e for e in daemon.audit() if e["event"].startswith("practice_")]
    assert scene.serves(A)
    daemon.stop()
    scene.config = write_config(scene.config, scene.lab, scene.bind, [scene.a, scene.b],
                                {"practice": {"every": "1h", "duration": "3s"}})  # fmt: skip
    daemon = scene.daemon()
    wait_for(lambda: any(e["event"] == "practice_ended" for e in daemon.audit()), 30, "a run")
    started = next(e for e in daemon.audit() if e["event"] == "practice_started")
    ended = next(e for e in daemon.audit() if e["event"] == "practice_ended")
    assert started["scheduled"] and (started["from"], started["to"]) == ("ca-a", "ca-b")
    assert ended["outcome"] == "SUCCEEDED" and scene.serves(A)


def test_lego_issues_through_the_public_name_as_the_runs_outcome_command(
    lab: Lab, tmp_path: Path, isolated_network: None
) -> None:
    """The issue's smoke test: a real issuance (lego through unbound, the public name) after the
    move and again before the return; the run SUCCEEDED only if both did."""
    from lab.clients import CHALLENGE, DOMAIN, ClientScene

    if shutil.which("lego") is None or shutil.which("unbound") is None:
        from tests.prerequisites import missing as _missing

        _missing("missing lego or unbound", "apt-get install lego unbound")
    smoke = tmp_path / "smoke.sh"
    practice = {"outcome_command": {"argv": ["/bin/sh", str(smoke)], "timeout": "40s"}}
    clients = ClientScene.build(lab, tmp_path, {"practice": practice})
    lego = (f"env LEGO_CA_CERTIFICATES={lab.tls.cert_path} lego --server {clients.url} "
            f"--accept-tos --email admin@example.test --domains {DOMAIN} --http --http.port "
            f"{CHALLENGE} --http-timeout 5 --path {tmp_path}/lego-$DNSFAILOVER_WHEN run")  # fmt: skip
    smoke.write_text(f"exec unshare -m sh -c 'mount --bind \"$0\" /etc/resolv.conf && exec "
                     f"\"$@\"' {clients.unbound.resolv_conf} {lego}\n")  # fmt: skip
    config = str(clients.config)

    def settled() -> bool:  # the health gate refuses a run to an instance not yet HEALTHY
        found = (clients.daemon.health() or {}).get("services", {}).get("acme", {})
        return all(h.get("state") == "healthy" for h in found.get("instances", {}).values())

    wait_for(settled, 20, "both instances healthy")
    assert main(["drill", "acme", "--to", "ca-b", "--for", "5s", "--wait", "-c", config]) == 0
    ended = next(e for e in clients.daemon.audit() if e["event"] == "practice_ended")
    assert ended["outcome"] == "SUCCEEDED", ended
    assert [check.split(":")[0] for check in ended["checks"]] == [
        "outcome_command passed after_move", "outcome_command passed before_return"]  # fmt: skip
    assert clients.unbound.resolve(NAME, "A") == ["127.0.0.2"]  # back on ca-a, as clients see
