"""RFC 2136 dynamic updates (BIND, Knot, PowerDNS), signed with TSIG, as compare-and-swap.

Read: a non-recursive query to the primary, AA required. Write: one signed UPDATE over TCP
whose prerequisite is the exact RRset just read (RFC 2136 §2.4.2, "RRset exists, value
dependent") or its absence (§2.4.3), followed by the replacement; NXRRSET/YXRRSET mean someone
else changed the record. Propagation: every verify server (or every address of the zone's NS
set) answers with AA, a SOA serial at least the primary's (RFC 1982), and the new RRset.
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
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.errors import (
    ConflictError,
    NotAuthoritativeError,
    ProviderAuthError,
    ProviderError,
    ProviderRefusedError,
    TransientError,
)
from dnsfailover.providers.authority import (
    Authorities,
    Server,
    label,
    server_address,
    servers_from,
)
from dnsfailover.providers.base import Propagation, Provider, Receipt
from dnsfailover.providers.tsig import TsigKey, load_tsig
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset

log = logging.getLogger(__name__)

_RCODE_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    dns.rcode.NXRRSET: (ConflictError, "the record no longer holds the value we read"),
    dns.rcode.YXRRSET: (ConflictError, "the record appeared since we read it"),
    dns.rcode.NXDOMAIN: (ConflictError, "the name vanished since we read it"),
    dns.rcode.YXDOMAIN: (ConflictError, "the name appeared since we read it"),
    dns.rcode.REFUSED: (
        ProviderRefusedError,
        "refused: the key is not allowed to change this "
        "name and type (check update-policy / allow-update)",
    ),
    dns.rcode.NOTAUTH: (
        NotAuthoritativeError,
        "the server is not authoritative for the zone, or rejected the TSIG signature",
    ),
    dns.rcode.NOTZONE: (NotAuthoritativeError, "the name is outside the zone"),
    dns.rcode.SERVFAIL: (TransientError, "the server failed (SERVFAIL)"),
    dns.rcode.FORMERR: (ProviderError, "the server could not parse the update (FORMERR)"),
    dns.rcode.NOTIMP: (ProviderError, "the server does not implement dynamic update"),
}


class Rfc2136Provider(Provider):
    kind = "rfc2136"

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
        self.write_timeout = settings.timeout * 2  # the update, then the SOA read
        self.key = (
            key
            if key is not None
            else (load_tsig(settings.tsig, f"providers.{name}.tsig") if settings.tsig else None)
        )
        self._keyring = None if self.key is None else self.key.dnspython_key()
        self.authorities = Authorities(settings.timeout, clock)
        self.primary = (server_address(settings.server), settings.port)

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
            response = self._ask(self.primary, candidate.to_text(), "SOA")
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
        kwargs: dict[str, object] = {}
        if self._keyring is not None:
            kwargs = {"keyring": self._keyring}
        return dns.update.UpdateMessage(self.zone, **kwargs)  # type: ignore[arg-type]

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
        self._send(self._update_message(change, fence), f"{change.name} {change.rdtype}")
        return str(self._serial(self.primary))

    def _move_fence(self, fence: Fence) -> None:
        update = self._new_update()
        self._add_fence(update, fence)
        self._send(update, f"{fence.owner} TXT")

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        try:
            response = dns.query.tcp(
                update, self.primary[0], port=self.primary[1], timeout=self.settings.timeout
            )
        except (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature) as e:
            raise ProviderAuthError(
                f"{label(self.primary)} rejected TSIG key {self._key_label()}: "
                f"{type(e).__name__} (wrong secret, algorithm or key name)"
            ) from None
        except dns.tsig.PeerBadTime:
            raise ProviderAuthError(
                f"{label(self.primary)} rejected the TSIG time: check both clocks (NTP)"
            ) from None
        except dns.exception.Timeout:
            raise TransientError(
                f"{label(self.primary)}: no answer to the update in {self.settings.timeout}s"
            ) from None
        except (OSError, EOFError, dns.exception.DNSException) as e:
            raise TransientError(f"{label(self.primary)}: update failed: {e}") from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            kind, why = _RCODE_ERRORS.get(
                rcode, (ProviderError, f"unexpected rcode {dns.rcode.to_text(rcode)}")
            )
            raise kind(f"{label(self.primary)}: update of {what}: {why}")

    def _token_after_landing(self) -> str:
        return str(self._serial(self.primary))

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
        want = int(receipt.token) if receipt.token else None
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
