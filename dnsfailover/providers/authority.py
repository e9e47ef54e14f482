"""Asking authoritative servers what they serve: RD off, AA required, SOA serials (RFC 1982).

Shared by every provider whose change is served by name servers we can query: RFC 2136 (the
primary and its secondaries) and a zone file loaded by a server (its `verify_servers`). A
change is served by a server when it answers with AA, a SOA serial at least the one the change
produced, and the new RRset. Imports errors and values only.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.serial
import dns.tsig

from dnsfailover.errors import (
    NotAuthoritativeError,
    ProviderAuthError,
    ProviderError,
    TransientError,
)
from dnsfailover.providers.base import Propagation, ServerView
from dnsfailover.providers.tsig import TsigKey
from dnsfailover.rrset import Change, RRset, describe

Server = tuple[str, int]


def server_address(host: str) -> str:
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]  # type: ignore[return-value]
    except OSError as e:
        raise TransientError(f"cannot resolve DNS server {host}: {e}") from None


def split_host_port(text: str, default_port: int = 53) -> tuple[str, int]:
    if text.startswith("["):  # [2001:db8::1]:5353
        host, _, port = text[1:].partition("]:")
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def servers_from(texts: Sequence[str]) -> list[Server]:
    """ "ADDR", "ADDR:PORT" or "[V6]:PORT" → (address, port), names resolved."""
    return [(server_address(h), p) for h, p in (split_host_port(t) for t in texts)]


def label(server: Server) -> str:
    return f"{server[0]}:{server[1]}"


def exchange(
    server: Server, request: dns.message.Message, timeout: float
) -> tuple[dns.message.Message, bool]:
    """Send `request` over TCP; the reply, and whether it can be trusted (its TSIG verified,
    or nothing was signed).

    dnspython's `dns.query.tcp` raises FormError on an unsigned reply to a signed request and
    drops its rcode, yet servers send exactly that for errors about the key or the zone:
    PowerDNS answers a wrong secret or an unknown key, and Knot a zone it does not have, with
    an unsigned NOTAUTH (RFC 8945 §5.3.2 leaves BADKEY/BADSIG replies unsigned). So the wire is
    read here, verified when it is signed, else parsed for its rcode alone: not `trusted`
    means the caller may use it to explain a refusal, never take it as success. TSIG errors
    the server reports (dns.tsig.PeerError) propagate."""
    deadline = time.monotonic() + timeout
    wire = request.to_wire()
    try:
        with socket.create_connection(server, timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            (size,) = struct.unpack("!H", _receive(sock, 2, deadline))
            reply = _receive(sock, size, deadline)
    except TimeoutError:
        raise TransientError(f"{label(server)}: no answer in {timeout}s") from None
    except OSError as e:
        raise TransientError(f"{label(server)}: TCP exchange failed: {e}") from None
    try:
        response = dns.message.from_wire(
            reply, keyring=request.keyring, request_mac=request.mac or b""
        )
        trusted = True
    except dns.exception.FormError as e:
        response, trusted = _unsigned(reply, request, server, e), False
    if not request.is_response(response):
        raise TransientError(f"{label(server)}: the reply does not answer our request")
    return response, trusted


def _unsigned(
    reply: bytes, request: dns.message.Message, server: Server, error: Exception
) -> dns.message.Message:
    """The reply parsed without verification, when a signed request got it without a TSIG."""
    try:
        response = dns.message.from_wire(reply, keyring=False)
    except dns.exception.DNSException:
        response = None
    if request.keyring is None or response is None or response.had_tsig:
        raise TransientError(f"{label(server)}: malformed reply: {error}") from None
    return response


def _receive(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


class Authorities:
    """Non-recursive queries with a timeout; every failure is a typed ProviderError.

    With `key`, a query to a server for which `signed(server)` holds is TSIG-signed and its
    reply verified; `ask(..., sign=False)` asks unsigned where only an explanation is wanted."""

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        key: TsigKey | None = None,
        signed: Callable[[Server], bool] = lambda server: False,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._key = key
        self._signed = signed

    def signs(self, server: Server) -> bool:
        return self._key is not None and self._signed(server)

    def ask(
        self, server: Server, name: str, rdtype: str, sign: bool | None = None
    ) -> dns.message.Message:
        request = dns.message.make_query(name, rdtype)
        request.flags &= ~dns.flags.RD
        if self.signs(server) if sign is None else (sign and self._key is not None):
            return self._ask_signed(server, request)
        try:
            response, _ = dns.query.udp_with_fallback(
                request, server[0], port=server[1], timeout=self.timeout
            )
        except dns.exception.Timeout:
            raise TransientError(f"{label(server)}: no answer in {self.timeout}s") from None
        except (OSError, dns.exception.DNSException) as e:
            raise TransientError(f"{label(server)}: query failed: {e}") from None
        return response

    def _ask_signed(self, server: Server, request: dns.message.Message) -> dns.message.Message:
        """The signed query over TCP; only a reply whose TSIG verifies is returned."""
        assert self._key is not None
        # The dnspython key is built for each message and never kept: its repr shows the secret.
        request.use_tsig(self._key.dnspython_key())
        key = f"{self._key.name} ({self._key.algorithm})"
        where = f"{label(server)} (signed query for {request.question[0].name})"
        try:
            response, trusted = exchange(server, request, self.timeout)
        except dns.tsig.PeerBadKey:
            raise ProviderAuthError(
                f"{where}: rejected TSIG key {key}: BADKEY (the server does not know the key)"
            ) from None
        except dns.tsig.PeerBadSignature:
            raise ProviderAuthError(
                f"{where}: rejected TSIG key {key}: BADSIG (wrong secret, algorithm or key name)"
            ) from None
        except dns.tsig.PeerBadTime:
            raise ProviderAuthError(
                f"{where}: rejected the TSIG time: check both clocks (NTP)"
            ) from None
        except (dns.tsig.BadSignature, dns.tsig.BadTime, dns.message.UnknownTSIGKey) as e:
            raise ProviderAuthError(
                f"{where}: the reply's TSIG does not verify with key {key} "
                f"({type(e).__name__}): not trusted (a wrong secret, or a forged answer)"
            ) from None
        except dns.exception.DNSException as e:
            raise TransientError(f"{where}: {type(e).__name__}: {e}") from None
        if trusted:
            return response
        rcode = dns.rcode.to_text(response.rcode())
        if response.rcode() == dns.rcode.NOERROR:
            raise ProviderAuthError(
                f"{where}: an unsigned NOERROR reply to a signed query: not trusted (a forged "
                "answer, or a server that does not sign its answers: use_tsig: false)"
            )
        # An unsigned error: Knot's NOTAUTH for a zone it lacks, PowerDNS's for a key it
        # does not accept. An unsigned query tells the two apart; neither counts as data.
        unsigned = self.ask(server, str(request.question[0].name), "SOA", sign=False)
        if unsigned.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or not (
            unsigned.flags & dns.flags.AA
        ):
            raise NotAuthoritativeError(f"{where}: {rcode} unsigned; not authoritative")
        raise ProviderAuthError(
            f"{where}: rejected TSIG key {key}: {rcode} unsigned (wrong secret, algorithm "
            "or key name, or the server does not know the key)"
        )

    @staticmethod
    def check_authoritative(response: dns.message.Message, server: Server, zone: str) -> None:
        rcode = response.rcode()
        if rcode == dns.rcode.SERVFAIL:
            raise TransientError(f"{label(server)}: SERVFAIL")
        if rcode == dns.rcode.REFUSED or not response.flags & dns.flags.AA:
            aa = "set" if response.flags & dns.flags.AA else "clear"
            raise NotAuthoritativeError(
                f"{label(server)} is not authoritative for {zone} "
                f"(rcode {dns.rcode.to_text(rcode)}, AA {aa})"
            )

    @staticmethod
    def rrset_of(response: dns.message.Message, name: str, rdtype: str) -> RRset | None:
        wanted = dns.rdatatype.from_text(rdtype)
        owner = dns.name.from_text(name)
        for rrset in response.answer:
            if rrset.name == owner and rrset.rdtype == wanted:
                return RRset.of(name, rdtype, rrset.ttl, [rd.to_text() for rd in rrset])
        return None

    def read(
        self, server: Server, zone: str, name: str, rdtype: str, sign: bool | None = None
    ) -> RRset | None:
        response = self.ask(server, name, rdtype, sign)
        self.check_authoritative(response, server, zone)
        return self.rrset_of(response, name, rdtype)

    def serial(self, server: Server, zone: str, sign: bool | None = None) -> int:
        response = self.ask(server, zone, "SOA", sign)
        self.check_authoritative(response, server, zone)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        raise NotAuthoritativeError(f"{label(server)} has no SOA for {zone}")

    def serves(
        self, server: Server, zone: str, change: Change, want: int | None
    ) -> tuple[bool, str]:
        """Does `server` serve `change` (and a serial at least `want`)? With why not."""
        try:
            serial = self.serial(server, zone)
            seen = self.read(server, zone, change.name, change.rdtype)
        except ProviderError as e:
            return False, str(e)
        if want is not None and dns.serial.Serial(serial) < dns.serial.Serial(want):
            return False, f"serial {serial} < {want}"
        if not change.after.same_data(seen):
            return False, f"serial {serial}, serves {describe(seen)}"
        return True, f"serial {serial}"

    def wait(
        self,
        servers: Sequence[Server],
        zone: str,
        change: Change,
        want: int | None,
        timeout: float,
    ) -> Propagation:
        """Until every server serves `change`, or `timeout` runs out; polling quickly at first."""
        start = self._clock()
        done: dict[Server, ServerView] = {}
        last: dict[Server, str] = {}
        while True:
            for server in servers:
                if server in done:
                    continue
                ok, detail = self.serves(server, zone, change, want)
                last[server] = detail
                if ok:
                    done[server] = ServerView(label(server), True, detail, self._clock() - start)
            elapsed = self._clock() - start
            if len(done) == len(servers) or elapsed >= timeout:
                break
            time.sleep(min(0.02 + elapsed / 20, 0.5, max(timeout - elapsed, 0.0)))
        views = [done.get(s) or ServerView(label(s), False, last[s], elapsed) for s in servers]
        return Propagation(len(done) == len(servers), elapsed, tuple(views))
