"""A plain HTTP proxy on loopback that holds back chosen requests: a slow API, on demand.

In front of moto's Route 53, it delays `GetChange` (GET .../change/ID) by `delay` seconds, as
real Route 53 does while a change is PENDING for tens of seconds; every other request passes
at once. Runs in a thread of the calling process.
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import requests

from lab.httpserver import LoopbackServer


class SlowProxy(LoopbackServer):
    name = "slow-proxy"

    def __init__(self, upstream: str, slow_path: str, delay: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_path = slow_path  # a request whose path contains this is held back
        self.delay = delay
        self.held = 0  # requests held back so far
        self.session = requests.Session()
        self.session.trust_env = False
        super().__init__(_Handler, None)

    @property
    def endpoint_url(self) -> str:
        return self.url("")


class _Handler(BaseHTTPRequestHandler):
    server: SlowProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        if self.server.slow_path in self.path:
            self.server.held += 1
            time.sleep(self.server.delay)  # the slow API itself, not a test waiting
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        upstream = self.server.session.request(
            self.command, self.server.upstream + self.path, data=body, headers=headers,
            timeout=10, allow_redirects=False,
        )  # fmt: skip
        self.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "content-encoding"):  # fmt: skip
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(upstream.content)))
        self.end_headers()
        self.wfile.write(upstream.content)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass
