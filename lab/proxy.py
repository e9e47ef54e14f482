"""A fault-injecting HTTPS proxy in front of a Pebble: pass through, or answer 500 serverInternal.

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
        self.fail = False
        self.session = requests.Session()
        self.session.trust_env = False
        self.verify = str(tls.cert_path)
        super().__init__(_Handler, tls.issue("fault-proxy"))

    @property
    def directory_url(self) -> str:
        return self.url("/dir")


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        if self.server.fail:
            self.send_response(500)
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
