"""Signed reads refuse a reply whose TSIG does not verify (providers/authority.py).

A forger on loopback answers every query over TCP with an AA reply naming its own target:
unsigned, or signed with a secret that is not ours (the same key name). Either way the read
is an auth error and the forged data is never returned. The real servers' side (a signed
read, a key the server rejects) is in tests/integration/test_provider_contract.py.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import dns.rrset
import dns.tsig
import pytest

from dnsfailover.config.secrets import Secret
from dnsfailover.errors import ProviderAuthError
from dnsfailover.providers.authority import Authorities
from dnsfailover.providers.tsig import TsigKey

OURS = "b3Vycy1zZWNyZXQtb3Vycy1zZWNyZXQtb3Vycy1zZWM="
THEIRS = "dGhlaXJzLXNlY3JldC10aGVpcnMtc2VjcmV0LXRoZWk="
KEY = TsigKey("ddns-key.", "hmac-sha256", Secret(OURS, "test"))


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _forge(wire: bytes, sign_with: str | None) -> bytes:
    query = dns.message.from_wire(wire, keyring=False)
    reply = dns.message.Message(id=query.id)
    reply.flags = dns.flags.QR | dns.flags.AA
    reply.question = list(query.question)
    name = query.question[0].name
    reply.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "evil.example.test."))
    if sign_with is not None:
        reply.use_tsig(dns.tsig.Key(dns.name.from_text("ddns-key."), sign_with))
    return reply.to_wire()


@pytest.fixture(params=["unsigned", "signed_with_another_secret"])
def forger(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    sign_with = None if request.param == "unsigned" else THEIRS
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)  # so that the thread sees `stop` soon
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                try:
                    (size,) = struct.unpack("!H", _receive(conn, 2))
                    answer = _forge(_receive(conn, size), sign_with)
                    conn.sendall(struct.pack("!H", len(answer)) + answer)
                except (OSError, ConnectionError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_a_forged_reply_to_a_signed_read_is_refused(forger: tuple[str, int]) -> None:
    signed = Authorities(2.0, key=KEY, signed=lambda server: True)
    with pytest.raises(ProviderAuthError, match="not trusted") as raised:
        signed.read(forger, "example.test.", "acme.example.test.", "CNAME")
    assert OURS not in str(raised.value) and THEIRS not in str(raised.value)
