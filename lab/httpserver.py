"""An HTTP(S) server in a thread of this process, bound to 127.0.0.1, for small lab servers."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab.net import LOOPBACK
from lab.tls import CertFiles


class LoopbackServer(ThreadingHTTPServer):
    """Serves `handler` on an ephemeral port; HTTPS with `tls`. Counts accepted connections."""

    daemon_threads = True
    name = "http"

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        tls: CertFiles | None,
        address: tuple[str, int] = (LOOPBACK, 0),
    ) -> None:
        super().__init__(address, handler)
        self.connections = 0
        self.tls = tls is not None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self.socket = context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self.serve_forever, name=self.name, daemon=True)

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        self.connections += 1
        return accepted

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str | None = None) -> str:
        host = host or str(self.server_address[0])
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def log_tail(self, lines: int = 40) -> str:
        return f"({self.name}: an in-process server, no log)"
