"""nginx (Debian's nginx-light) as many loopback HTTPS targets that look like an ACME server.

One nginx, one server block listening on `count` consecutive ports of 127.0.0.1. Each port
answers GET /dir with a directory whose URLs name that port, and HEAD/GET /nonce with a fresh
Replay-Nonce ($request_id, 32 hex digits: valid base64url) and Cache-Control: no-store. Two
workers, so on a two-core machine the targets are not the bottleneck of a probing benchmark.

With `access_log=True` every request is logged as "<epoch seconds.ms> <port> <method> <uri>",
which is how a benchmark sees when each target was probed, the same way for every prober.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from lab.net import LOOPBACK
from lab.process import LabError, ManagedProcess
from lab.tls import LabCA

DIRECTORY = (
    '{"newNonce":"https://127.0.0.1:$server_port/nonce",'
    '"newAccount":"https://127.0.0.1:$server_port/acct",'
    '"newOrder":"https://127.0.0.1:$server_port/order"}'
)


def free_port_range(count: int, first: int = 20000) -> int:
    """The first of `count` consecutive TCP ports of 127.0.0.1 that are free now."""
    start = first
    while start + count < 65000:
        for port in range(start, start + count):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((LOOPBACK, port))
                except OSError:
                    start = port + 1
                    break
        else:
            return start
    raise LabError(f"no {count} consecutive free ports on {LOOPBACK}")


class NginxTargets:
    name = "nginx"

    def __init__(self, directory: Path, tls: LabCA, count: int, access_log: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.count = count
        self.first_port = free_port_range(count)
        self.access_log_path = directory / "access.log"
        cert = tls.issue("nginx")
        listens = "\n".join(f"    listen {LOOPBACK}:{port} ssl;" for port in self.ports)
        access = (
            f"log_format probe '$msec $server_port $request_method $uri';\n"
            f"  access_log {self.access_log_path} probe buffer=256k flush=1s;"
            if access_log
            else "access_log off;"
        )
        conf = directory / "nginx.conf"
        conf.write_text(f"""\
worker_processes 2;
worker_rlimit_nofile 65536;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 16384; }}
http {{
  {access}
  client_body_temp_path {directory}/body;
  keepalive_timeout 30s;
  ssl_certificate {cert.cert};
  ssl_certificate_key {cert.key};
  ssl_session_cache shared:ssl:10m;
  server {{
{listens}
    location = /dir {{
      default_type application/json;
      return 200 '{DIRECTORY}';
    }}
    location = /nonce {{
      add_header Replay-Nonce $request_id always;
      add_header Cache-Control no-store always;
      return 200;
    }}
    location / {{ return 404; }}
  }}
}}
""")
        self.process = ManagedProcess(
            "nginx",
            ["nginx", "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
            directory / "nginx.log",
        )

    @property
    def ports(self) -> range:
        return range(self.first_port, self.first_port + self.count)

    def directory_url(self, port: int) -> str:
        return f"https://{LOOPBACK}:{port}/dir"

    def start(self) -> None:
        self.process.start()
        last = self.ports[-1]

        def listening() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                return s.connect_ex((LOOPBACK, last)) == 0

        self.process.wait_until(listening, timeout=30)

    def requests_since(self, since: float) -> list[tuple[float, int, str]]:
        """(time, port, "METHOD uri") of every logged request at or after `since`."""
        time.sleep(1.2)  # the log buffer is flushed every second
        found = []
        for line in self.access_log_path.read_text().splitlines():
            stamp, port, method, uri = line.split(" ", 3)
            at = float(stamp)
            if at >= since:
                found.append((at, int(port), f"{method} {uri}"))
        return found

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)
