"""What clients see: the probe presents the public name; a flip is verified as a client would.

The lab's Pebbles have certificates for the public name (acme.example.test), as production
instances must; one made without it would break every client the moment the name moved there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnsfailover.cli.main import main
from dnsfailover.controller.state import StateStore
from lab import Lab
from lab.scenario import NAME, wait_for, write_config

A, B = "ca-a.example.test.", "ca-b.example.test."


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


def _ttl(server: Any) -> int | None:
    response = server.query(NAME, "CNAME")
    return next((int(r.ttl) for r in response.answer), None)


def test_degraded_ttl_is_written_with_the_flip_and_restored_once_stable(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          {"degraded_ttl": 5, "hold_down": "3s"})  # fmt: skip
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    assert _ttl(bind.secondary) == 60
    a.kill()
    wait_for(lambda: bind.secondary.rrset(NAME, "CNAME") == {B}, 10, "the flip")
    assert _ttl(bind.secondary) == 5  # written with the flip, in the same update
    wait_for(lambda: _ttl(bind.secondary) == 60, 15, "the normal TTL back once stable")
    assert bind.secondary.rrset(NAME, "CNAME") == {B}
    wait_for(lambda: any(e["event"] == "ttl" for e in daemon.audit()), 5, "the TTL change audited")
    ttl_entry = next(e for e in daemon.audit() if e["event"] == "ttl")
    assert ttl_entry["change"].endswith("ca-b.example.test. -> ca-b.example.test.")
    assert ttl_entry["outcome"] == "applied" and ttl_entry["propagation_complete"] is True
    state = StateStore(daemon.state_dir).load()
    assert [f.target for f in state.flips["acme"]] == ["ca-b"]  # the TTL change is no flip
    assert main(["status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "convergence budget: detection 2.8s + write 0.0" in out
    assert "client TTL 60s" in out and "(5s client TTL while degraded)" in out
