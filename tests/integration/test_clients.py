"""Real ACME clients (lego, certbot) issue through the public name across a flip.

The clients resolve acme.example.test through unbound (a stub to the lab's BIND, caching per
TTL), exactly as in production, and connect with that name: `https://acme.example.test:PORT/dir`.
The two Pebbles listen on one port at two loopback addresses (127.0.0.2, 127.0.0.3), the
addresses of ca-a.example.test and ca-b.example.test in the zone. A few issuances prove the
path here; `make bench PARTS=clients` measures the client-visible outage against the budget.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab import Lab
from lab.clients import HOSTS, ClientScene
from lab.scenario import NAME, wait_for

B = "ca-b.example.test."


@pytest.fixture
def clients(lab: Lab, tmp_path: Path, isolated_network: None) -> ClientScene:
    missing = [b for b in ("unbound", "lego", "certbot") if shutil.which(b) is None]
    if missing:
        from tests.prerequisites import missing as _missing

        _missing(f"missing {', '.join(missing)}", "apt-get install unbound lego certbot")
    return ClientScene.build(lab, tmp_path)


def test_clients_issue_through_the_name_across_a_kill_and_a_freeze(
    clients: ClientScene,
) -> None:
    first = clients.issue("lego")
    assert first.ok, first.output
    clients.a.kill()
    clients.issue_until_it_works(deadline=60)  # the outage is measured in bench/clients.py
    assert all(s.rrset(NAME, "CNAME") == {B} for s in clients.bind.servers)
    assert clients.unbound.resolve(NAME, "A") == [HOSTS["ca-b"]]
    wait_for(lambda: any(e["event"] == "client_verified" for e in clients.daemon.audit()), 20,
             "the flip verified through the resolver")  # fmt: skip
    verified = next(e for e in clients.daemon.audit() if e["event"] == "client_verified")
    assert verified["verification"]["through"] == "resolver 127.0.0.1:53"
    assert verified["verification"]["address"] == HOSTS["ca-b"]
    # now the active one (ca-b) hangs: back to a restarted ca-a (hold-down does not stop it)
    clients.a.start()
    wait_for(lambda: clients.daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"]
             == "healthy", 15, "ca-a back")  # fmt: skip
    clients.b.freeze()
    try:
        clients.issue_until_it_works(deadline=60)
        after = clients.issue("certbot")
    finally:
        clients.b.resume()
    assert after.ok, after.output
    assert clients.unbound.resolve(NAME, "A") == [HOSTS["ca-a"]]
