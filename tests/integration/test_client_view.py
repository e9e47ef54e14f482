"""What clients see: the probe presents the public name; a flip is verified as a client would.

The lab's Pebbles have certificates for the public name (acme.example.test), as production
instances must; one made without it would break every client the moment the name moved there.
"""

from __future__ import annotations

from pathlib import Path

from lab import Lab
from lab.scenario import NAME, wait_for, write_config

A = "ca-a.example.test."


def test_a_standby_whose_certificate_lacks_the_public_name_is_no_candidate(
    lab: Lab, tmp_path: Path
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b", public_names=())
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b])
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-b"]["state"]
             == "unhealthy", 10, "ca-b unhealthy")  # fmt: skip
    standby = daemon.health()["services"]["acme"]["instances"]["ca-b"]
    assert "hostname 'acme.example.test' doesn't match" in standby["reason"]
    assert "clients reaching it as acme.example.test would fail" in standby["reason"]
    a.kill()
    wait_for(lambda: any(e["event"] == "all_down" for e in daemon.audit()), 10, "the alarm")
    assert all(s.rrset(NAME, "CNAME") == {A} for s in bind.servers)  # the name stays
    entry = next(e for e in daemon.audit() if e["event"] == "all_down")
    assert "doesn't match" in entry["health"]["ca-b"]["reason"]
