"""The RFC 2136 provider's contract, against BIND, Knot DNS and PowerDNS (lab).

Each server starts once per module; every test begins from the lab's zone, put back by one
unconditional signed UPDATE (`reset`). What only one server has is tested where it lives:
BIND's secondary and the nsupdate rendering in test_provider_rfc2136.py, PowerDNS without
SOA-EDIT-DNSUPDATE at the end of this file.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dns.query
import dns.rcode
import dns.tsig
import dns.update
import pytest

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.errors import (
    ConflictError,
    DnsFailoverError,
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
from lab.bind import ZONE, TsigKey
from lab.knot import KnotServer
from lab.net import LOOPBACK
from lab.pdns import SCHEMA, PdnsServer
from tests.prerequisites import missing as prerequisite

ACME = "acme.example.test."
OCSP = "ocsp.example.test."
OTHER = "other.example.test."
FENCE = "_dnsfailover." + ACME
FAST = RetryPolicy(attempts=2, first_delay=0.05)

# server → the binaries (or files) it needs, and their Debian package
SERVERS = {
    "bind": {"named": "bind9", "tsig-keygen": "bind9"},
    "knot": {"knotd": "knot"},
    "pdns": {
        "pdns_server": "pdns-server",
        "pdnsutil": "pdns-server",
        str(SCHEMA): "pdns-backend-sqlite3",
    },
}


class Primary(Protocol):
    port: int

    def rrset(self, name: str, rdtype: str) -> set[str]: ...

    def soa_serial(self) -> int | None: ...


@dataclass(frozen=True)
class Served:
    """One server of the lab as the contract sees it: where updates go, the key granted the
    managed names and their fences, a valid key granted no update, the servers to verify."""

    name: str
    primary: Primary
    update_key: TsigKey
    other_key: TsigKey
    verify_servers: list[str]


def _require(binaries: dict[str, str]) -> None:
    """In CI a missing server fails the test; elsewhere it skips and says what to install."""
    missing = [
        f"{b} (apt-get install {p})"
        for b, p in binaries.items()
        if not (Path(b).exists() if b.startswith("/") else shutil.which(b))
    ]
    if missing:
        prerequisite("missing lab binaries", ", ".join(missing))


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    kind: str = request.param
    _require(SERVERS[kind])
    directory = tmp_path_factory.mktemp(kind)
    if kind == "bind":
        with Lab(directory) as lab:
            pair = lab.bind()
            yield Served(kind, pair.primary, pair.update_key, pair.other_key, pair.verify_servers)
        return
    process = KnotServer(directory) if kind == "knot" else PdnsServer(directory)
    try:
        process.start()
        yield Served(kind, process, process.update_key, process.other_key, process.verify_servers)
    finally:
        process.stop()


@pytest.fixture
def served(server: Served) -> Served:
    reset(server)
    return server


def reset(server: Served) -> None:
    """The managed records as the lab's zone has them, and no fences."""
    key = server.update_key
    update = dns.update.UpdateMessage(ZONE)
    update.use_tsig(dns.tsig.Key(key.name, key.secret, key.algorithm))
    update.replace(ACME, 60, "CNAME", "ca-a.example.test.")
    update.replace(OCSP, 60, "A", "127.0.0.10", "127.0.0.11")
    update.delete(OCSP, "AAAA")
    for name in (ACME, OCSP):
        update.delete("_dnsfailover." + name, "TXT")
    response = dns.query.tcp(update, LOOPBACK, port=server.primary.port, timeout=2)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def provider(server: Served, **overrides: object) -> Rfc2136Provider:
    settings: dict[str, object] = {
        "type": "rfc2136",
        "server": LOOPBACK,
        "port": server.primary.port,
        "zone": ZONE,
        "tsig": {"key_file": str(server.update_key.path)},
        "timeout": "2s",
        "verify_servers": server.verify_servers,
    }
    settings.update(overrides)
    return Rfc2136Provider(server.name, Settings.model_validate(settings), retry=FAST)


def cname(value: str) -> RRset:
    return RRset.of(ACME, "CNAME", 60, [value])


A_TO_B = Change(cname("ca-a.example.test."), cname("ca-b.example.test."))


class Overtaken(Rfc2136Provider):
    """A writer that read the record (or the fence), then lost the race: `rival` runs after
    the read and before our UPDATE leaves (what a second writer, or a frozen-then-thawed
    leader, does)."""

    rival: Callable[[], object] | None = None

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        if self.rival is not None:
            rival, self.rival = self.rival, None
            rival()
        return super()._write(change, fence)


def overtaken(server: Served, rival: Callable[[], object]) -> Overtaken:
    dns = Overtaken(server.name, provider(server).settings, retry=FAST)
    dns.rival = rival
    return dns


# ----------------------------------------------------------------------------- reads and writes


def test_read_the_managed_record(served: Served) -> None:
    dns = provider(served)
    assert dns.read(ACME, "CNAME") == cname("ca-a.example.test.")
    assert dns.read(OCSP, "A") == RRset.of(OCSP, "A", 60, ["127.0.0.10", "127.0.0.11"])
    assert dns.read(OCSP, "AAAA") is None


def test_compare_and_swap_is_confirmed_served_by_every_server(served: Served) -> None:
    dns = provider(served)
    serial = served.primary.soa_serial()
    assert serial is not None
    receipt = dns.apply(Change(dns.read(ACME, "CNAME"), cname("ca-b.example.test.")))
    assert int(receipt.change_id) > serial  # the server raised the serial (RFC 2136 §3.7)
    propagation = dns.wait(receipt, timeout=5)
    assert propagation.complete, propagation.summary()
    assert [v.server for v in propagation.servers] == served.verify_servers
    assert all(v.ok and v.detail == f"serial {receipt.change_id}" for v in propagation.servers)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-b.example.test."}


def test_a_set_to_a_set(served: Served) -> None:
    dns = provider(served)
    after = RRset.of(OCSP, "A", 30, ["127.0.0.12", "127.0.0.13"])
    assert dns.wait(dns.apply(Change(dns.read(OCSP, "A"), after)), timeout=5).complete
    assert dns.read(OCSP, "A") == after


def test_create_a_record_that_was_absent(served: Served) -> None:
    dns = provider(served)
    after = RRset.of(OCSP, "AAAA", 60, ["::1"])
    assert dns.wait(dns.apply(Change(None, after)), timeout=5).complete
    assert dns.read(OCSP, "AAAA") == after
    with pytest.raises(ConflictError, match="appeared"):  # absent was the expectation
        dns.apply(Change(None, RRset.of(OCSP, "AAAA", 60, ["::2"])))
    assert served.primary.rrset(OCSP, "AAAA") == {"::1"}


# ----------------------------------------------------------------------------- compare-and-swap


def test_stale_read_is_a_conflict_and_changes_nothing(served: Served) -> None:
    dns = provider(served)
    serial = served.primary.soa_serial()
    with pytest.raises(ConflictError, match="no longer holds the value we read"):
        dns.apply(Change(cname("ca-c.example.test."), cname("ca-b.example.test.")))
    assert served.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}
    assert served.primary.soa_serial() == serial


@pytest.mark.parametrize(
    "expected",
    [["127.0.0.10"], ["127.0.0.10", "127.0.0.11", "127.0.0.12"]],
    ids=["part_of_the_set", "more_than_the_set"],
)
def test_the_prerequisite_must_equal_the_whole_set(served: Served, expected: list[str]) -> None:
    """RFC 2136 §3.2.3: "RRset exists (value dependent)" compares whole RRsets."""
    dns = provider(served)
    with pytest.raises(ConflictError):
        dns.apply(Change(RRset.of(OCSP, "A", 60, expected), RRset.of(OCSP, "A", 60, ["127.0.0.9"])))
    assert served.primary.rrset(OCSP, "A") == {"127.0.0.10", "127.0.0.11"}


def test_a_race_lost_between_read_and_update_overwrites_nothing(served: Served) -> None:
    rival = provider(served)
    to_c = Change(cname("ca-a.example.test."), cname("ca-c.example.test."))
    dns = overtaken(served, lambda: rival.apply(to_c))
    before = dns.read(ACME, "CNAME")
    with pytest.raises(ConflictError, match="no longer holds the value we read"):
        dns.apply(Change(before, cname("ca-b.example.test.")))
    assert served.primary.rrset(ACME, "CNAME") == {"ca-c.example.test."}  # the rival's


# ----------------------------------------------------------------------------- the fence


def test_a_write_whose_token_is_no_longer_the_fence_is_refused(served: Served) -> None:
    dns = provider(served)
    assert dns.move_fence(ACME, 10) is None
    assert served.primary.rrset(FENCE, "TXT") == {'"epoch=10"'}
    dns.apply(A_TO_B, fence=10)
    serial = served.primary.soa_serial()
    assert serial is not None
    newer = provider(served)
    stale = overtaken(served, lambda: newer.move_fence(ACME, 20))
    # The record's own compare-and-swap would pass (it holds ca-b): only the fence refuses.
    back = Change(cname("ca-b.example.test."), cname("ca-a.example.test."))
    with pytest.raises(FencedError, match=r"refused the write \(.*\): .*epoch=20, newer than ours"):
        stale.apply(back, fence=10)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-b.example.test."}
    assert served.primary.rrset(FENCE, "TXT") == {'"epoch=20"'}
    assert served.primary.soa_serial() == serial + 1  # the fence move alone
    with pytest.raises(FencedError, match="epoch=20, newer than ours"):
        dns.move_fence(ACME, 10)  # the deposed leader cannot take it back either


# ----------------------------------------------------------------------------- keys and zones


def test_a_key_without_the_grant_is_refused(served: Served) -> None:
    """BIND and PowerDNS answer REFUSED; Knot answers BADKEY, which the provider tells from
    an unknown key by asking whether the server accepts the key on a query."""
    dns = provider(served, tsig={"key_file": str(served.other_key.path)})
    with pytest.raises(ProviderRefusedError, match="not granted this name and type"):
        dns.apply(A_TO_B)
    with pytest.raises(ProviderRefusedError, match="not granted this name and type"):
        dns.move_fence(ACME, 3)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}
    assert served.primary.rrset(FENCE, "TXT") == set()


def test_a_name_outside_the_grant(served: Served) -> None:
    """BIND's update-policy and Knot's ACL grant names; PowerDNS grants a key the whole zone
    (TSIG-ALLOW-DNSUPDATE), so there the write lands (docs/dns-servers.md says so)."""
    dns = provider(served)
    change = Change(dns.read(OTHER, "CNAME"), RRset.of(OTHER, "CNAME", 60, ["ca-b.example.test."]))
    if served.name == "pdns":
        dns.apply(change)
        assert served.primary.rrset(OTHER, "CNAME") == {"ca-b.example.test."}
        dns.apply(Change(change.after, change.before))
        return
    with pytest.raises(ProviderRefusedError, match="update-policy"):
        dns.apply(change)
    assert served.primary.rrset(OTHER, "CNAME") == {"ca-a.example.test."}


def test_wrong_tsig_secret_is_an_auth_error_without_the_secret(
    served: Served, tmp_path: Path
) -> None:
    wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0="
    (tmp_path / "secret").write_text(wrong)
    dns = provider(served, tsig={"name": "ddns-key.", "secret_file": str(tmp_path / "secret")})
    with pytest.raises(ProviderAuthError, match="rejected TSIG key ddns-key.") as raised:
        dns.apply(A_TO_B)
    assert wrong not in str(raised.value) and served.update_key.secret not in str(raised.value)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-a.example.test."}


def test_unknown_key_name_is_an_auth_error(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_TSIG", served.update_key.secret)
    dns = provider(served, tsig={"name": "nobody.", "secret_env": "LAB_TSIG"})
    with pytest.raises(ProviderAuthError, match="rejected TSIG key nobody."):
        dns.apply(A_TO_B)
    with pytest.raises(ProviderAuthError, match="rejected TSIG key nobody."):
        dns.move_fence(ACME, 3)


def test_zone_the_server_is_not_authoritative_for(served: Served) -> None:
    dns = provider(served, zone="example.org.")
    name = "acme.example.org."
    with pytest.raises(NotAuthoritativeError):
        dns.read(name, "CNAME")
    change = Change(RRset.of(name, "CNAME", 60, ["a.example.org."]),
                    RRset.of(name, "CNAME", 60, ["b.example.org."]))  # fmt: skip
    with pytest.raises(NotAuthoritativeError):
        dns.apply(change)
    # The UPDATE itself, past the provider's reads: NOTAUTH (BIND signs it; Knot and PowerDNS
    # do not, which dnspython alone would only report as a missing TSIG).
    with pytest.raises(
        NotAuthoritativeError, match="NOTAUTH; .* not authoritative for example.org"
    ):
        dns._move_fence(Fence(name, None, 1))


def test_zone_is_discovered_from_the_primary(served: Served) -> None:
    dns = provider(served, zone=None)
    assert dns.read(ACME, "CNAME") == cname("ca-a.example.test.")
    assert dns.zone == ZONE


def test_the_secret_never_shows(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    """Not in the provider's repr, str or attributes, its rendering, its logs or its errors:
    dnspython's own Key prints its secret, so the provider never keeps one."""
    caplog.set_level(logging.DEBUG)
    secrets = (served.update_key.secret, served.other_key.secret)
    writer = provider(served)
    errors: list[DnsFailoverError] = []
    for attempt in (
        lambda: writer.wait(writer.apply(A_TO_B), timeout=5),
        lambda: writer.apply(A_TO_B),  # now a conflict
        lambda: writer.move_fence(ACME, 4),
        lambda: provider(served, tsig={"key_file": str(served.other_key.path)}).apply(A_TO_B),
    ):
        try:
            attempt()
        except DnsFailoverError as e:
            errors.append(e)
    assert len(errors) == 2
    shown = [repr(writer), str(writer), repr(vars(writer)), writer.render(A_TO_B), caplog.text]
    shown += [f"{e!r} {e}" for e in errors]
    assert not [text for text in shown for secret in secrets if secret in text]
    assert not [v for v in vars(writer).values() if isinstance(v, dns.tsig.Key)]


# ----------------------------------------------------------------------------- signed reads


def test_reads_are_signed_and_a_wrong_key_is_an_auth_error(served: Served, tmp_path: Path) -> None:
    """Reads from the primary carry the TSIG key (use_tsig, on with a key): a server that
    rejects the key is an auth error on the read itself, never an answer taken as data."""
    assert provider(served).read(ACME, "CNAME") == cname("ca-a.example.test.")  # signed, verified
    (tmp_path / "secret").write_text("d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0=")
    wrong = {"name": "ddns-key.", "secret_file": str(tmp_path / "secret")}
    with pytest.raises(ProviderAuthError, match="rejected TSIG key ddns-key."):
        provider(served, tsig=wrong).read(ACME, "CNAME")
    with pytest.raises(ProviderAuthError, match="rejected TSIG key ddns-key."):
        provider(served, tsig=wrong).read_fence(ACME)
    # Unsigned reads (use_tsig: false) do not carry the key: the same wrong key reads.
    unsigned = provider(served, tsig=wrong, use_tsig=False)
    assert unsigned.read(ACME, "CNAME") == cname("ca-a.example.test.")


def test_confirmations_from_verify_servers_signed(served: Served) -> None:
    dns = provider(served, verify_servers_tsig=True)
    propagation = dns.wait(dns.apply(A_TO_B), timeout=5)
    assert propagation.complete, propagation.summary()


def test_an_unsigned_fence_read_never_stops_writes_on_its_own(served: Served) -> None:
    """use_tsig: false: a newer token seen unsigned (here forged, as on the path) must be
    confirmed by a signed read before it deposes anyone; a real one still does."""
    dns = provider(served, use_tsig=False)
    real = dns.authorities.read

    def forged(
        server: tuple[str, int], zone: str, name: str, rdtype: str, sign: bool | None = None
    ) -> RRset | None:
        if name == FENCE and not sign:
            return RRset.of(FENCE, "TXT", 60, [Fence.text(99)])
        return real(server, zone, name, rdtype, sign)

    dns.authorities.read = forged  # type: ignore[method-assign]
    dns.apply(A_TO_B, fence=10)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-b.example.test."}
    assert served.primary.rrset(FENCE, "TXT") == {'"epoch=10"'}
    provider(served).move_fence(ACME, 20)
    with pytest.raises(FencedError, match=r"epoch=20 \(read signed\), newer than ours"):
        dns.apply(Change(cname("ca-b.example.test."), cname("ca-a.example.test.")), fence=10)
    assert served.primary.rrset(ACME, "CNAME") == {"ca-b.example.test."}


# ----------------------------------------------------------------------------- PowerDNS only


@pytest.mark.parametrize(
    ("soa_edit", "serial"),
    [("NONE", "2026010100"), ("EPOCH", None)],
    ids=["serial_unchanged", "serial_lowered"],
)
def test_pdns_soa_edit_dnsupdate_that_does_not_raise_the_serial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, soa_edit: str, serial: str | None
) -> None:
    """RFC 2136 §3.7 wants the serial raised after an update. PowerDNS's SOA-EDIT-DNSUPDATE
    NONE leaves it, EPOCH (Unix time) lowers the lab's date-style 2026010100 in RFC 1982
    terms: the write lands and the primary serves it, and the provider names the fix, since
    secondaries that follow the serial would never transfer it."""
    _require(SERVERS["pdns"])
    pdns = PdnsServer(tmp_path / "pdns", soa_edit_dnsupdate=soa_edit)
    pdns.start()
    try:
        served = Served("pdns", pdns, pdns.update_key, pdns.other_key, pdns.verify_servers)
        writer = provider(served)
        receipt = writer.apply(A_TO_B)
        assert receipt.change_id == str(pdns.soa_serial()) == (serial or receipt.change_id)
        assert writer.wait(receipt, timeout=5).complete
        assert "soa_serial_not_raised" in caplog.text and "SOA-EDIT-DNSUPDATE" in caplog.text
    finally:
        pdns.stop()


def test_pdns_update_from_an_address_it_does_not_allow(tmp_path: Path) -> None:
    """allow-dnsupdate-from without the controller's address: PowerDNS answers REFUSED
    before it looks at the key, so the error names that setting with the grants."""
    _require(SERVERS["pdns"])
    pdns = PdnsServer(tmp_path / "pdns", allow_from="192.0.2.0/24")
    pdns.start()
    try:
        served = Served("pdns", pdns, pdns.update_key, pdns.other_key, pdns.verify_servers)
        with pytest.raises(ProviderRefusedError, match="allow-dnsupdate-from"):
            provider(served).apply(A_TO_B)
        assert pdns.rrset(ACME, "CNAME") == {"ca-a.example.test."}
    finally:
        pdns.stop()


# ----------------------------------------------------------------------------- Knot only


def test_servfail_is_transient_and_changes_nothing(tmp_path: Path) -> None:
    """A real SERVFAIL: Knot whose journal directory is gone fails every update that passes
    its prerequisites. Retried as transient (the bounded attempts), then reported; nothing
    written."""
    _require(SERVERS["knot"])
    knot = KnotServer(tmp_path / "knot")
    knot.start()
    try:
        shutil.rmtree(tmp_path / "knot" / "db")
        served = Served("knot", knot, knot.update_key, knot.other_key, knot.verify_servers)
        with pytest.raises(TransientError, match="SERVFAIL") as raised:
            provider(served).apply(A_TO_B)
        assert "update of acme.example.test. CNAME" in str(raised.value)
        assert knot.rrset(ACME, "CNAME") == {"ca-a.example.test."}
        assert knot.soa_serial() == 2026010100
    finally:
        knot.stop()
