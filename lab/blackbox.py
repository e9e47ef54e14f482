"""prometheus-blackbox-exporter (Debian package) on 127.0.0.1: the reference prober.

Two http modules make the same checks as our ACME probe, with TLS verification against the lab
CA: `acme_directory` (GET, 200, a body naming newNonce) and `acme_nonce` (HEAD, 200, a
base64url Replay-Nonce). The caller is the scraper: GET /probe?module=…&target=… .
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from lab.net import LOOPBACK, free_port, port_open
from lab.process import ManagedProcess
from lab.tls import LabCA


class BlackboxExporter:
    name = "blackbox"

    def __init__(self, directory: Path, tls: LabCA) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = directory / "blackbox.yml"
        tls_config = f"tls_config: {{ca_file: {tls.cert_path}}}"
        config.write_text(f"""\
modules:
  acme_directory:
    prober: http
    timeout: 5s
    http:
      method: GET
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp: ['"newNonce"']
      preferred_ip_protocol: ip4
      {tls_config}
  acme_nonce:
    prober: http
    timeout: 5s
    http:
      method: HEAD
      valid_status_codes: [200]
      fail_if_header_not_matches:
        - header: Replay-Nonce
          regexp: '^[A-Za-z0-9_-]+$'
      preferred_ip_protocol: ip4
      {tls_config}
""")
        self.process = ManagedProcess(
            "blackbox",
            [
                "prometheus-blackbox-exporter",
                f"--config.file={config}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
            directory / "blackbox.log",
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process.start()
        self.process.wait_until(lambda: port_open(self.port), timeout=20)

    def probe(self, session: requests.Session, module: str, target: str) -> dict[str, Any]:
        """One probe; returns probe_success and probe_duration_seconds from the exposition."""
        query = urlencode({"module": module, "target": target})
        response = session.get(f"http://{LOOPBACK}:{self.port}/probe?{query}", timeout=30)
        response.raise_for_status()
        values = {}
        for line in response.text.splitlines():
            if line.startswith(("probe_success ", "probe_duration_seconds ")):
                name, value = line.split()
                values[name] = float(value)
        return values

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)
