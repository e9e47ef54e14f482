"""RFC 2136 dynamic updates (BIND, Knot, PowerDNS), signed with TSIG, as compare-and-swap.

Read: a non-recursive query to the primary, AA required. Write: one signed UPDATE over TCP
whose prerequisite is the exact RRset just read (RFC 2136 §2.4.2, "RRset exists, value
dependent") or its absence (§2.4.3), followed by the replacement; NXRRSET/YXRRSET mean someone
else changed the record. The three servers proven in the lab differ where an update is turned
down (BIND REFUSED, Knot BADKEY, PowerDNS an unsigned REFUSED or NOTAUTH): such answers are
explained by asking the primary, and a serial an update did not raise is logged with its fix
(docs/dns-servers.md). Propagation: every verify server (or every address of the zone's NS
set) answers with AA, a SOA serial at least the primary's (RFC 1982), and the new RRset.
With a key, reads from the primary (the record, the serial, the fence, the NS set) are signed
and their replies' TSIG verified (`use_tsig`, on by default), and so are the confirmations
from the other verify servers with `verify_servers_tsig`. A fence read that is not
authenticated never stops writes on its own: a signed read must confirm a newer token.
Imports config values, errors, rrset and the providers' own modules; never health, policy or plan.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.serial
import dns.tsig
import dns.update

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.errors import (
    ConflictError,
    FencedError,
    NotAuthoritativeError,
    ProviderAuthError,
    ProviderError,
    ProviderRefusedError,
    TransientError,
)
from dnsfailover.providers.authority import (
    Authorities,
    Server,
    exchange,
    label,
    server_address,
    servers_from,
)
from dnsfailover.providers.base import Propagation, Provider, Receipt
from dnsfailover.providers.tsig import TsigKey, load_tsig
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset

log = logging.getLogger(__name__)

# Where each server grants a key its names and types (docs/dns-servers.md).
_GRANTS = (
    "BIND: update-policy; Knot: acl with action: update; PowerDNS: TSIG-ALLOW-DNSUPDATE, "
    "allow-dnsupdate-from"
)

_RCODE_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    dns.rcode.NXRRSET: (ConflictError, "the record no longer holds the value we read"),
    dns.rcode.YXRRSET: (ConflictError, "the record appeared since we read it"),
    dns.rcode.NXDOMAIN: (ConflictError, "the name vanished since we read it"),
    dns.rcode.YXDOMAIN: (ConflictError, "the name appeared since we read it"),
    dns.rcode.REFUSED: (
        ProviderRefusedError,
        f"REFUSED: this key, from this address, is not granted this name and type ({_GRANTS})",
    ),
    dns.rcode.NOTZONE: (NotAuthoritativeError, "the name is outside the zone"),
    dns.rcode.SERVFAIL: (TransientError, "the server failed (SERVFAIL)"),
    dns.rcode.FORMERR: (ProviderError, "the server could not parse the update (FORMERR)"),
    dns.rcode.NOTIMP: (ProviderError, "the server does not implement dynamic update"),
}


class Rfc2136Provider(Provider):
    def __init__(
        self,
        name: str,
        settings: Settings,
        key: TsigKey | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: object,
    ) -> None:
        super().__init__(name, settings.zone, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.propagation_timeout = settings.propagation_timeout
        self.write_timeout = settings.timeout * 3  # SOA read, the update, SOA read
        self.key = (
            key
            if key is not None
            else (load_tsig(settings.tsig, f"providers.{name}.tsig") if settings.tsig else None)
        )
        self.primary = (server_address(settings.server), settings.port)
        self.reads_signed = self.key is not None and settings.use_tsig is not False
        self.authorities = Authorities(settings.timeout, clock, self.key, self._signs)

    def _signs(self, server: Server) -> bool:
        """Which servers' answers are TSIG-signed and verified: the primary's (use_tsig), the
        other verify servers' too with verify_servers_tsig (they must know the key)."""
        if server == self.primary:
            return self.reads_signed
        return self.settings.verify_servers_tsig

    # ------------------------------------------------------------------ DNS plumbing

    def _ask(self, server: Server, name: str, rdtype: str) -> dns.message.Message:
        return self.authorities.ask(server, name, rdtype)

    def _serial(self, server: Server) -> int:
        return self.authorities.serial(server, self.zone)

    # ------------------------------------------------------------------ hooks

    def _discover_zone(self, name: str) -> str:
        """The zone that holds `name`: ask the primary for an authoritative SOA, label by label."""
        candidate = dns.name.from_text(name)
        while True:
            try:
                response = self._ask(self.primary, candidate.to_text(), "SOA")
            except NotAuthoritativeError:  # a signed query outside every zone: go up
                response = dns.message.make_response(dns.message.make_query(candidate, "SOA"))
            if response.flags & dns.flags.AA:
                for section in (response.answer, response.authority):
                    for rrset in section:
                        if rrset.rdtype == dns.rdatatype.SOA:
                            return str(rrset.name.to_text())
            if candidate == dns.name.root:
                raise NotAuthoritativeError(f"{label(self.primary)} has no zone for {name}")
            candidate = candidate.parent()

    def _read(self, name: str, rdtype: str) -> RRset | None:
        return self.authorities.read(self.primary, self.zone, name, rdtype)

    def _new_update(self) -> dns.update.UpdateMessage:
        # The dnspython key is built for each message and never kept: its repr shows the secret.
        update = dns.update.UpdateMessage(self.zone)
        if self.key is not None:
            update.use_tsig(self.key.dnspython_key())
        return update

    @staticmethod
    def _add_fence(update: dns.update.UpdateMessage, fence: Fence) -> None:
        """The fence's compare-and-swap, first in the message: BIND checks prerequisites in
        order, so a deposed leader is refused on the fence (NXRRSET) before anything else."""
        if fence.before is None:
            update.absent(fence.owner, "TXT")
        else:
            update.present(fence.owner, "TXT", Fence.text(fence.before))
        if fence.before != fence.after:
            update.replace(fence.owner, FENCE_TTL, "TXT", Fence.text(fence.after))

    def _update_message(
        self, change: Change, fence: Fence | None = None
    ) -> dns.update.UpdateMessage:
        update = self._new_update()
        if fence is not None:
            self._add_fence(update, fence)
        name, rdtype, after = change.name, change.rdtype, change.after
        if change.before is None:
            update.absent(name, rdtype)
            update.add(name, after.ttl, rdtype, *after.values)
        else:
            # Value-dependent prerequisite: the whole RRset, rdata strings without TTL (BIND
            # answers FORMERR to a prerequisite rdataset that carries a TTL).
            update.present(name, rdtype, *change.before.values)
            update.replace(name, after.ttl, rdtype, *after.values)
        return update

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        before = self._serial(self.primary)
        self._send(self._update_message(change, fence), f"{change.name} {change.rdtype}")
        after = self._serial(self.primary)
        if dns.serial.Serial(after) <= dns.serial.Serial(before):
            # RFC 2136 §3.7 wants the serial raised. PowerDNS leaves it with SOA-EDIT-DNSUPDATE
            # NONE and lowers a date-style one with EPOCH: secondaries that follow the serial
            # never transfer the change. The write stands; wait() checks every RRset.
            log.warning(
                "soa_serial_not_raised provider=%s server=%s before=%d after=%d name=%s fix=%s",
                self.name,
                label(self.primary),
                before,
                after,
                change.name,
                "raise the serial on update (PowerDNS: SOA-EDIT-DNSUPDATE INCREASE or DEFAULT)",
            )
        return str(after)

    def _move_fence(self, fence: Fence) -> None:
        update = self._new_update()
        self._add_fence(update, fence)
        self._send(update, f"{fence.owner} TXT")

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        where = f"{label(self.primary)}: update of {what}"
        try:
            response, trusted = exchange(self.primary, update, self.settings.timeout)
        except dns.tsig.PeerBadKey:
            raise self._explain_refusal(where, "BADKEY") from None
        except dns.tsig.PeerBadSignature:
            raise ProviderAuthError(
                f"{label(self.primary)} rejected TSIG key {self._key_label()}: "
                "PeerBadSignature (wrong secret, algorithm or key name)"
            ) from None
        except dns.tsig.PeerBadTime:
            raise ProviderAuthError(
                f"{label(self.primary)} rejected the TSIG time: check both clocks (NTP)"
            ) from None
        except dns.exception.DNSException as e:
            raise TransientError(f"{where}: {type(e).__name__}: {e}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR and not trusted:
            # It may have landed: uncertain, so the retry re-reads before calling a conflict.
            raise TransientError(f"{where}: NOERROR without the TSIG signature: not trusted")
        if rcode == dns.rcode.NOTAUTH or not trusted:
            raise self._explain_refusal(where, dns.rcode.to_text(rcode))
        if rcode != dns.rcode.NOERROR:
            kind, why = _RCODE_ERRORS.get(
                rcode, (ProviderError, f"unexpected rcode {dns.rcode.to_text(rcode)}")
            )
            raise kind(f"{where}: {why}")

    def _explain_refusal(self, where: str, answer: str) -> ProviderError:
        """An answer that does not say why the update was turned down: NOTAUTH (signed or
        not), or BADKEY, which Knot sends for a key it knows but whose ACL grants no update
        of this name and type, as for a key it does not know. Two questions decide it: is
        the primary authoritative for the zone, and does it accept our key on a query."""
        try:
            self.authorities.serial(self.primary, self.zone, sign=False)  # an explanation only
        except NotAuthoritativeError as e:
            return NotAuthoritativeError(f"{where}: {answer}; {e}")
        except ProviderError:
            pass
        if self.key is None:
            return ProviderRefusedError(f"{where}: {answer} to an unsigned update: set tsig")
        if self._key_accepted():
            return ProviderRefusedError(
                f"{where}: {answer}, though the server accepts key {self._key_label()} on a "
                f"query: the key is not granted this name and type ({_GRANTS})"
            )
        return ProviderAuthError(
            f"{label(self.primary)} rejected TSIG key {self._key_label()}: {answer} "
            "(wrong secret, algorithm or key name, or the server does not know the key)"
        )

    def _key_accepted(self) -> bool:
        """Does the primary answer a query signed with our key with a verified signature?"""
        assert self.key is not None
        query = dns.message.make_query(self.zone, "SOA")
        query.flags &= ~dns.flags.RD
        query.use_tsig(self.key.dnspython_key())
        try:
            response, trusted = exchange(self.primary, query, self.settings.timeout)
        except (ProviderError, dns.exception.DNSException):
            return False
        return trusted and response.rcode() == dns.rcode.NOERROR

    def _fence_to(self, name: str, token: int) -> Fence:
        """A newer token seen by an unsigned read (use_tsig: false) stops nothing until a
        signed read confirms it: a forged answer must not depose a leader. With no key at all
        nothing is authenticated, the UPDATE included (docs/security.md)."""
        try:
            return super()._fence_to(name, token)
        except FencedError:
            if self.reads_signed or self.key is None:
                raise
        owner = Fence(name, None, 0).owner
        found = self.authorities.read(self.primary, self.zone, owner, "TXT", sign=True)
        try:
            current = Fence.parse(name, None if found is None else found.values)
        except ValueError as e:
            raise ProviderError(f"provider {self.name}: {e}") from None
        if current is not None and current > token:
            raise FencedError(
                f"{owner} holds epoch={current} (read signed), newer than ours ({token}): "
                "another controller leads now; not writing"
            )
        log.warning(
            "fence_read_not_confirmed provider=%s owner=%s signed=%s token=%d",
            self.name,
            owner,
            current,
            token,
        )
        return Fence(name, current, token)

    def _change_id_after_landing(self) -> str:
        return str(self._serial(self.primary))

    def __repr__(self) -> str:
        return (
            f"Rfc2136Provider({self.name}, primary={label(self.primary)}, "
            f"zone={self._zone}, key={self._key_label()})"
        )

    def _key_label(self) -> str:
        return "(none)" if self.key is None else f"{self.key.name} ({self.key.algorithm})"

    def verify_servers(self) -> list[Server]:
        """The configured verify servers, else every address of the zone's NS set."""
        if self.settings.verify_servers:
            return servers_from(self.settings.verify_servers)
        response = self._ask(self.primary, self.zone, "NS")
        self.authorities.check_authoritative(response, self.primary, self.zone)
        servers: list[Server] = []
        for rrset in response.answer:
            for rd in rrset:
                servers.append((server_address(rd.target.to_text()), 53))
        return sorted(set(servers))

    def _wait(self, receipt: Receipt, timeout: float) -> Propagation:
        want = int(receipt.change_id) if receipt.change_id else None
        servers = self.verify_servers()
        return self.authorities.wait(servers, self.zone, receipt.change, want, timeout)

    def _render(self, change: Change) -> str:
        """The equivalent nsupdate script; the key is named, its secret never printed. (With
        several controllers the leader adds the fence's prerequisite: README.)"""
        lines = []
        if self.key is not None:
            lines.append(
                f"; sign with: nsupdate -k <key file for {self.key.name}> "
                f"({self.key.algorithm}; secret not shown)"
            )
        lines += [f"server {self.primary[0]} {self.primary[1]}", f"zone {self.zone}"]
        if change.before is None:
            lines.append(f"prereq nxrrset {change.name} IN {change.rdtype}")
        else:
            lines += [
                f"prereq yxrrset {change.name} IN {change.rdtype} {v}" for v in change.before.values
            ]
            lines.append(f"update delete {change.name} IN {change.rdtype}")
        lines += [
            f"update add {change.name} {change.after.ttl} IN {change.rdtype} {v}"
            for v in change.after.values
        ]
        lines.append("send")
        return "\n".join(lines)
