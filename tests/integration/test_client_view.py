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


def test_every_flip_is_verified_as_a_client_would_see_it(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b])
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    wait_for(lambda: any(e["event"] == "client_verified" for e in daemon.audit()), 15,
             "the flip verified")  # fmt: skip
    entry = next(e for e in daemon.audit() if e["event"] == "client_verified")
    assert entry["to"] == "ca-b" and entry["outcome"] == "ok"
    assert entry["verification"]["through"] == "the written record"
    assert entry["reason"] == "directory, nonce ok"


def test_a_flip_to_an_address_serving_the_wrong_certificate_raises_the_alarm(
    lab: Lab, tmp_path: Path
) -> None:
    """An A-record service whose DNS addresses are not what its probe checks: ca-b's probe
    reaches a good Pebble, but its record sends clients to 127.0.0.4, where a server answers
    with a certificate for another name. Health cannot see it; the client's view can."""
    a = lab.pebble("ca-a", address="127.0.0.2")
    b = lab.pebble("ca-b", address="127.0.0.3", port=a.port)
    lab.hostile(address=("127.0.0.4", a.port), names=("wrong.example.test",))
    bind = lab.bind()
    name = "ocsp.example.test."  # an A record in the lab zone (the update policy grants it)
    instances = [
        {"name": "ca-a", "addresses": ["127.0.0.2"],
         "acme": {"directory": a.directory_url, "ca_bundle": str(lab.tls.cert_path)}},
        {"name": "ca-b", "addresses": ["127.0.0.4"],
         "acme": {"directory": b.directory_url, "ca_bundle": str(lab.tls.cert_path)}},
    ]  # fmt: skip
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          {"name": name, "type": "A", "adopt": True, "instances": instances,
                           "ttl": 2})  # fmt: skip
    daemon = lab.daemon(config)
    wait_for(lambda: bind.secondary.rrset(name, "A") == {"127.0.0.2"}, 15, "adopted for ca-a")
    # the move onto ca-a is verified too: let that finish before ca-a goes away
    wait_for(lambda: _verified(daemon, "client_verified", "ca-a"), 15, "ca-a verified")
    a.kill()
    wait_for(lambda: bind.secondary.rrset(name, "A") == {"127.0.0.4"}, 15, "the flip")
    wait_for(lambda: _verified(daemon, "client_verify_failed", "ca-b"), 30, "the alarm")
    entry = _verified(daemon, "client_verify_failed", "ca-b")
    assert entry is not None
    assert entry["verification"]["address"] == "127.0.0.4"
    assert "hostname 'ocsp.example.test' doesn't match" in entry["reason"], entry["reason"]
    assert bind.secondary.rrset(name, "A") == {"127.0.0.4"}  # no flip by itself: health decides


def _verified(daemon: Any, event: str, to: str) -> dict[str, Any] | None:
    return next((e for e in daemon.audit() if e["event"] == event and e["to"] == to), None)
