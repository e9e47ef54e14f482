"""A small HTTPS (or HTTP) server whose every path misbehaves in its own way, for probe tests.

Routes are functions of the request handler; `HOSTILE_ROUTES` holds the standard set. The
server runs in a thread of the test process and binds 127.0.0.1 only, and counts the requests
of each path (`hits`). Hostile documents for the revocation probes are built here too: an
OCSP response signed with an algorithm nobody knows, a CRL whose issuer name is megabytes long.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from lab.httpserver import LoopbackServer
from lab.tls import CertFiles

Route = Callable[[BaseHTTPRequestHandler], None]


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def directory(base: str) -> dict[str, object]:
    return {
        "newNonce": f"{base}/nonce",
        "newAccount": f"{base}/account",
        "newOrder": f"{base}/order",
        "revokeCert": f"{base}/revoke",
        "keyChange": f"{base}/key-change",
        "meta": {"termsOfService": "https://example.invalid/tos"},
        "Zx8a3Bq": "https://community.letsencrypt.org/t/adding-random-entries-to-the-directory/33417",
    }


def _base(handler: BaseHTTPRequestHandler) -> str:
    server = handler.server
    scheme = "https" if getattr(server, "tls", False) else "http"
    return f"{scheme}://{handler.headers.get('Host')}"


def ok_directory(handler: BaseHTTPRequestHandler) -> None:
    _send(handler, 200, json.dumps(directory(_base(handler))).encode())


def fresh_nonce(handler: BaseHTTPRequestHandler) -> None:
    _send(handler, 200, headers={"Replay-Nonce": secrets.token_urlsafe(16),
                                 "Cache-Control": "no-store"})  # fmt: skip


def same_nonce(handler: BaseHTTPRequestHandler) -> None:
    _send(handler, 200, headers={"Replay-Nonce": "c2FtZS1ub25jZQ", "Cache-Control": "no-store"})


def problem(status: int, kind: str, extra: dict[str, str] | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        body = {"type": f"urn:ietf:params:acme:error:{kind}", "detail": f"{kind} from the lab"}
        _send(handler, status, json.dumps(body).encode(), "application/problem+json", extra)

    return route


def raw(status: int, body: bytes, content_type: str = "application/json") -> Route:
    return lambda handler: _send(handler, status, body, content_type)


def huge(handler: BaseHTTPRequestHandler) -> None:
    _send(handler, 200, b"{" + b" " * (10 * 1024 * 1024) + b"}")


def trickle(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then one byte a second: no single read ever times out."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    try:
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(1)
    except OSError:
        pass


def hang(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(30)


def redirect_to(location: str) -> Route:
    return lambda handler: _send(handler, 302, headers={"Location": location})


def elsewhere_directory(handler: BaseHTTPRequestHandler) -> None:
    body = directory("https://acme.elsewhere.example")
    _send(handler, 200, json.dumps(body).encode())


def bad_url_directory(handler: BaseHTTPRequestHandler) -> None:
    """newNonce is "https://[": urlsplit raises on it."""
    _send(handler, 200, json.dumps({**directory(_base(handler)), "newNonce": "https://["}).encode())


NUL_PROBLEM = "badNonce\x00\x1b[2J\x07\u202e"  # NUL, a terminal escape, a bell, a bidi override


HOSTILE_ROUTES: dict[str, Route] = {
    "/dir": ok_directory,
    "/nonce": fresh_nonce,
    "/same-nonce/dir": lambda h: _send(h, 200, json.dumps(
        {**directory(_base(h)), "newNonce": f"{_base(h)}/same-nonce/nonce"}).encode()),
    "/same-nonce/nonce": same_nonce,
    "/invalid-json/dir": raw(200, b'{"newNonce": '),
    "/array/dir": raw(200, b'["newNonce", "newAccount", "newOrder"]'),
    "/missing-keys/dir": lambda h: _send(h, 200, json.dumps(
        {"newNonce": f"{_base(h)}/nonce"}).encode()),
    "/huge/dir": huge,
    "/trickle/dir": trickle,
    "/hang/dir": hang,
    "/500/dir": problem(500, "serverInternal"),
    "/503/dir": problem(503, "rateLimited", {"Retry-After": "30"}),
    "/429/dir": problem(429, "rateLimited", {"Retry-After": "60"}),
    "/503-forever/dir": problem(503, "rateLimited", {"Retry-After": "99999999999"}),
    "/nul-problem/dir": problem(400, NUL_PROBLEM),
    "/long-problem/dir": problem(400, "x" * 30_000),  # type and detail: under the 64 KiB cap
    "/bad-url/dir": bad_url_directory,
    "/elsewhere/dir": elsewhere_directory,
    "/nonce-500/dir": lambda h: _send(h, 200, json.dumps(
        {**directory(_base(h)), "newNonce": f"{_base(h)}/nonce-500/nonce"}).encode()),
    "/nonce-500/nonce": problem(500, "serverInternal"),
    "/nonce-hang/dir": lambda h: _send(h, 200, json.dumps(
        {**directory(_base(h)), "newNonce": f"{_base(h)}/nonce-hang/nonce"}).encode()),
    "/nonce-hang/nonce": hang,
}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: HostileServer

    def _dispatch(self) -> None:
        path = self.path.split("?")[0]
        self.server.hits[path] += 1
        route = self.server.routes.get(path)
        if route is None:
            _send(self, 404, b'{"type": "about:blank"}', "application/problem+json")
        else:
            route(self)

    do_GET = do_HEAD = do_POST = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"


class HostileServer(LoopbackServer):
    """`keep_alive`: answer HTTP/1.1 and keep connections open (the default closes each one).
    `connections` counts the connections accepted."""

    name = "hostile"

    def __init__(
        self,
        tls: CertFiles | None = None,
        routes: dict[str, Route] | None = None,
        keep_alive: bool = False,
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        super().__init__(_KeepAliveHandler if keep_alive else _Handler, tls, address)
        self.routes = dict(HOSTILE_ROUTES if routes is None else routes)
        self.hits: Counter[str] = Counter()


# ----------------------------------------------------------------- hostile revocation data


class Issuer:
    """A throwaway CA key and self-signed certificate (written to `directory/issuer.pem`)."""

    def __init__(self, directory: Path, name: str = "hostile issuer") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = self._sign(self.name, 1, now)
        self.path = directory / "issuer.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _sign(self, subject: x509.Name, serial: int, now: dt.datetime) -> x509.Certificate:
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip

    def ocsp_with_unknown_algorithm(self, serial: int) -> bytes:
        """A good answer about `serial`, signed by the issuer, whose signature algorithm OID
        (ecdsa-with-SHA256, 1.2.840.10045.4.3.2) is changed to one no library knows (…4.3.9)."""
        now = dt.datetime.now(dt.UTC)
        leaf = self._sign(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]), serial, now)
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(cert=leaf, issuer=self.cert, algorithm=hashes.SHA1(),
                          cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now,
                          next_update=now + dt.timedelta(hours=1), revocation_time=None,
                          revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.cert)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        der = response.public_bytes(serialization.Encoding.DER)
        known, unknown = (
            bytes.fromhex("06082a8648ce3d040302"),
            bytes.fromhex("06082a8648ce3d040309"),
        )
        assert der.count(known) == 1
        return der.replace(known, unknown)

    def crl_with_issuer(self, issuer: str) -> bytes:
        """A DER CRL, signed by this key, that names `issuer` (an O= of any length) as issuer."""
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, issuer)])
        crl = (
            x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
            .next_update(now + dt.timedelta(days=1)).sign(self.key, hashes.SHA256())
        )  # fmt: skip
        return crl.public_bytes(serialization.Encoding.DER)
