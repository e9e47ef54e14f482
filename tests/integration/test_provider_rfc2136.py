"""The RFC 2136 provider against a real BIND primary and secondary (lab)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.errors import (
    ConflictError,
    FencedError,
    NotAuthoritativeError,
    ProviderAuthError,
    ProviderRefusedError,
    TransientError,
)
from dnsfailover.providers import RetryPolicy
from dnsfailover.providers.rfc2136 import Rfc2136Provider
from dnsfailover.rrset import Change, Fence, RRset
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


def test_read_the_managed_record(bind: BindPair) -> None:
    dns = provider(bind)
    assert dns.read(ACME, "CNAME") == cname("ca-a.example.test.")
    assert dns.read(OCSP, "A") == RRset.of(OCSP, "A", 60, ["127.0.0.10", "127.0.0.11"])
    assert dns.read(OCSP, "AAAA") is None


def test_compare_and_swap_reaches_every_server(bind: BindPair) -> None:
    dns = provider(bind)
    before = dns.read(ACME, "CNAME")
    receipt = dns.apply(Change(before, cname("ca-b.example.test.")))
    assert int(receipt.token) > 2026010100
    propagation = dns.wait(receipt, timeout=5)
    assert propagation.complete, propagation.summary()
    assert [v.server for v in propagation.servers] == bind.verify_servers
    assert all(v.ok and f"serial {receipt.token}" == v.detail for v in propagation.servers)
    assert bind.secondary.rrset(ACME, "CNAME") == {"ca-b.example.test."}


def test_stale_read_is_a_conflict_and_changes_nothing(bind: BindPair) -> None:
    dns = provider(bind)
    serial = bind.primary.soa_serial()
    stale = Change(cname("ca-c.example.test."), cname("ca-b.example.test."))
    with pytest.raises(ConflictError, match="no longer holds the value we read"):
        dns.apply(stale)
    assert bind.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}
    assert bind.primary.soa_serial() == serial


def test_partial_prerequisite_is_a_conflict(bind: BindPair) -> None:
    dns = provider(bind)
    part = RRset.of(OCSP, "A", 60, ["127.0.0.10"])  # the RRset holds .10 and .11
    with pytest.raises(ConflictError):
        dns.apply(Change(part, RRset.of(OCSP, "A", 60, ["127.0.0.12"])))
    assert bind.primary.rrset(OCSP, "A") == {"127.0.0.10", "127.0.0.11"}


def test_a_set_to_a_set(bind: BindPair) -> None:
    dns = provider(bind)
    before = dns.read(OCSP, "A")
    after = RRset.of(OCSP, "A", 30, ["127.0.0.12", "127.0.0.13"])
    dns.wait(dns.apply(Change(before, after)), timeout=5)
    assert dns.read(OCSP, "A") == after
    assert bind.secondary.rrset(OCSP, "A") == {"127.0.0.12", "127.0.0.13"}


def test_create_a_record_that_was_absent(bind: BindPair) -> None:
    dns = provider(bind)
    after = RRset.of(OCSP, "AAAA", 60, ["::1"])
    propagation = dns.wait(dns.apply(Change(None, after)), timeout=5)
    assert propagation.complete
    assert dns.read(OCSP, "AAAA") == after
    with pytest.raises(ConflictError, match="appeared"):  # absent was the expectation
        dns.apply(Change(None, RRset.of(OCSP, "AAAA", 60, ["::2"])))


def test_name_outside_the_update_policy_is_refused(bind: BindPair) -> None:
    dns = provider(bind)
    other = "other.example.test."
    before = dns.read(other, "CNAME")
    with pytest.raises(ProviderRefusedError, match="update-policy"):
        dns.apply(Change(before, RRset.of(other, "CNAME", 60, ["ca-b.example.test."])))
    assert bind.primary.rrset(other, "CNAME") == {"ca-a.example.test."}


def test_a_key_without_grants_is_refused(bind: BindPair) -> None:
    dns = provider(bind, tsig={"key_file": str(bind.other_key.path)})
    with pytest.raises(ProviderRefusedError):
        dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))


def test_wrong_tsig_secret_is_an_auth_error_without_the_secret(
    bind: BindPair, tmp_path: Path
) -> None:
    wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0="
    (tmp_path / "secret").write_text(wrong)
    dns = provider(bind, tsig={"name": "ddns-key.", "secret_file": str(tmp_path / "secret")})
    with pytest.raises(ProviderAuthError) as raised:
        dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    assert wrong not in str(raised.value) and bind.update_key.secret not in str(raised.value)
    assert bind.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}


def test_unknown_key_name_is_an_auth_error(bind: BindPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_TSIG", bind.update_key.secret)
    dns = provider(bind, tsig={"name": "nobody.", "secret_env": "LAB_TSIG"})
    with pytest.raises(ProviderAuthError, match="rejected TSIG key nobody."):
        dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))


def test_zone_the_server_is_not_authoritative_for(bind: BindPair) -> None:
    dns = provider(bind, zone="example.org.")
    name = "acme.example.org."
    with pytest.raises(NotAuthoritativeError):
        dns.read(name, "CNAME")
    change = Change(RRset.of(name, "CNAME", 60, ["a.example.org."]),
                    RRset.of(name, "CNAME", 60, ["b.example.org."]))  # fmt: skip
    with pytest.raises(NotAuthoritativeError):
        dns.apply(change)


def test_zone_is_discovered_from_the_primary(bind: BindPair) -> None:
    dns = provider(bind, zone=None)
    assert dns.read(ACME, "CNAME") == cname("ca-a.example.test.")
    assert dns.zone == "example.test."


def test_primary_down_is_transient_within_the_timeout(bind: BindPair) -> None:
    dns = provider(bind, timeout="1s")
    bind.primary.stop()
    started = time.monotonic()
    with pytest.raises(TransientError):
        dns.read(ACME, "CNAME")
    with pytest.raises(TransientError):
        dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")))
    # one read (UDP, up to 1s) and two write attempts (TCP, refused at once) and one backoff
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


# ----------------------------------------------------------------------------- the fence


FENCE = "_dnsfailover." + ACME


class Overtaken(Rfc2136Provider):
    """A leader that reads the fence, then loses the race: a newer leader moves it before
    our UPDATE reaches BIND (what a frozen-then-thawed leader does)."""

    newer: Rfc2136Provider | None = None

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        if self.newer is not None:
            self.newer.move_fence(change.name, 20)
            self.newer = None
        return super()._write(change, fence)


def test_bind_refuses_a_write_whose_token_is_no_longer_the_fence(bind: BindPair) -> None:
    dns = provider(bind)
    assert dns.move_fence(ACME, 10) is None
    assert bind.primary.rrset(FENCE, "TXT") == {'"epoch=10"'}
    dns.apply(Change(cname("ca-a.example.test."), cname("ca-b.example.test.")), fence=10)
    serial = bind.primary.soa_serial()
    stale = Overtaken("bind", dns.settings, retry=FAST)
    stale.newer = provider(bind)
    # The record's own compare-and-swap would pass (it holds ca-b): only the fence refuses.
    with pytest.raises(FencedError, match=r"refused the write \(.*\): .*epoch=20, newer than ours"):
        stale.apply(Change(cname("ca-b.example.test."), cname("ca-a.example.test.")), fence=10)
    assert bind.primary.rrset(ACME, "CNAME") == {"ca-b.example.test."}
    assert bind.primary.rrset(FENCE, "TXT") == {'"epoch=20"'}
    assert bind.primary.soa_serial() == serial + 1  # the fence move alone
    with pytest.raises(FencedError, match="epoch=20, newer than ours"):
        dns.move_fence(ACME, 10)  # the deposed leader cannot take it back either


def test_the_fence_needs_its_own_grant(bind: BindPair) -> None:
    """A key without the fence's grant in update-policy: a clear refusal, nothing written."""
    dns = provider(bind, tsig={"key_file": str(bind.other_key.path)})
    with pytest.raises(ProviderRefusedError, match="update-policy"):
        dns.move_fence(ACME, 3)
    assert bind.primary.rrset(FENCE, "TXT") == set()
