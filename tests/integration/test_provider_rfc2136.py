"""The RFC 2136 provider against BIND alone: what needs its secondary, a stopped primary, or
nsupdate's terms. The contract every server keeps (compare-and-swap, races, the fence, keys,
zones) is in test_provider_contract.py, against BIND, Knot and PowerDNS."""

from __future__ import annotations

import time

import pytest

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.errors import TransientError
from dnsfailover.providers import RetryPolicy
from dnsfailover.providers.rfc2136 import Rfc2136Provider
from dnsfailover.rrset import Change, RRset
from lab import Lab
from lab.bind import BindPair

ACME = "acme.example.test."
OCSP = "ocsp.example.test."
FAST = RetryPolicy(attempts=2, first_delay=0.05)


def provider(bind: BindPair, **overrides: object) -> Rfc2136Provider:
    settings: dict[str, object] = {
        "type": "rfc2136",
        "server": "127.0.0.1",
        "port": bind.primary.port,
        "zone": "example.test.",
        "tsig": {"key_file": str(bind.update_key.path)},
        "timeout": "2s",
        "verify_servers": bind.verify_servers,
    }
    settings.update(overrides)
    return Rfc2136Provider("bind", Settings.model_validate(settings), retry=FAST)


def cname(value: str) -> RRset:
    return RRset.of(ACME, "CNAME", 60, [value])


@pytest.fixture
def bind(lab: Lab) -> BindPair:
    return lab.bind()


def test_primary_down_is_transient_within_the_timeout(bind: BindPair) -> None:
    dns = provider(bind, timeout="1s")
    bind.primary.stop()
    started = time.monotonic()
    with pytest.raises(TransientError):
        dns.read(ACME, "CNAME")
    with pytest.raises(TransientError):
        dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    # one read (UDP, up to 1s), two write attempts (each its SOA read, up to 1s: the UPDATE
    # itself is never sent) and one backoff
    assert time.monotonic() - started < 1 + 2 * 1 + 0.5


def test_propagation_reports_the_server_that_lags(bind: BindPair) -> None:
    dns = provider(bind)
    bind.secondary.freeze()  # answers nothing: never serves the new data
    try:
        receipt = dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
        propagation = dns.wait(receipt, timeout=1.5)
    finally:
        bind.secondary.resume()
    primary, secondary = propagation.servers
    assert not propagation.complete
    assert primary.ok and primary.seconds < 1
    assert not secondary.ok and "no answer" in secondary.detail
    assert 1.5 <= propagation.seconds < 4


def test_render_is_an_nsupdate_script_without_the_secret(bind: BindPair) -> None:
    dns = provider(bind)
    text = dns.render(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    assert text == (
        "acme.example.test. CNAME: ca-a.example.test. -> ca-b.example.test.\n"
        "; sign with: nsupdate -k <key file for ddns-key.> (hmac-sha256; secret not shown)\n"
        f"server 127.0.0.1 {bind.primary.port}\n"
        "zone example.test.\n"
        "prereq yxrrset acme.example.test. IN CNAME ca-a.example.test.\n"
        "update delete acme.example.test. IN CNAME\n"
        "update add acme.example.test. 60 IN CNAME ca-b.example.test.\n"
        "send"
    )
    assert bind.update_key.secret not in text
    assert bind.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}
