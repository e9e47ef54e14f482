"""A fault-injecting HTTPS proxy in front of a Pebble: pass through, or answer 500 serverInternal.

Modes (`mode`): "pass"; "fail" (every request: 500 serverInternal); "rate_limited" (every
request: 429, the probe's own trouble, an inconclusive result); "alternate" (directory
requests alternate: one passed through, one 500), a check that never completes a streak.

Forwards each request to the upstream with the client's Host header, so Pebble builds its
directory URLs for the proxy's address. Runs in a thread of the calling process, bound to
127.0.0.1.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import requests

from lab.httpserver import LoopbackServer
from lab.tls import LabCA

PROBLEM = json.dumps(
    {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "injected by the lab proxy"}
).encode()


class FaultProxy(LoopbackServer):
    name = "fault-proxy"

    def __init__(self, upstream: str, tls: LabCA) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self._directory_requests = 0
        self.session = requests.Session()
        self.session.trust_env = False
        self.verify = str(tls.cert_path)
        # It stands in for a CA instance: its certificate covers the public names too.
        names = ("localhost", "127.0.0.1", "acme.example.test", "ocsp.example.test")
        super().__init__(_Handler, tls.issue("fault-proxy", names=names))

    @property
    def fail(self) -> bool:
        return self.mode == "fail"

    @fail.setter
    def fail(self, value: bool) -> None:
        self.mode = "fail" if value else "pass"

    @property
    def directory_url(self) -> str:
        return self.url("/dir")

    def answer(self, path: str) -> int | None:
        """The status to answer with instead of passing the request on (None: pass it)."""
        if self.mode == "fail":
            return 500
        if self.mode == "rate_limited":
            return 429
        if self.mode == "alternate" and path.startswith("/dir"):
            self._directory_requests += 1
            return 500 if self._directory_requests % 2 == 0 else None
        return None


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        status = self.server.answer(self.path)
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(PROBLEM)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(PROBLEM)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        try:
            upstream = self.server.session.request(
                self.command,
                self.server.upstream + self.path,
                data=body,
                headers=headers,
                verify=self.server.verify,
                timeout=5,
                allow_redirects=False,
            )
        except requests.RequestException:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "content-encoding",
            ):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(upstream.content)

    do_GET = do_HEAD = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass
