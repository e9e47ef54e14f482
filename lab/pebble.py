"""A Pebble ACME server (Let's Encrypt's test CA) on loopback ports of its own."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from lab.net import LOOPBACK, free_port
from lab.process import ManagedProcess
from lab.tls import LabCA

# The names clients use (bind.MANAGED without the dot): every lab Pebble's certificate covers
# them, as a production instance's covers the public name, unless it is made without them.
PUBLIC_NAMES = ("acme.example.test", "ocsp.example.test")


class Pebble(ManagedProcess):
    """One Pebble instance. Its root and intermediate are new at every start. Its TLS
    certificate covers localhost, its address, its own name (NAME.example.test) and
    `public_names`."""

    def __init__(
        self,
        name: str,
        directory: Path,
        tls_ca: LabCA,
        ocsp_url: str = "",
        public_names: tuple[str, ...] = PUBLIC_NAMES,
        address: str = LOOPBACK,
        port: int | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.address = address  # another loopback address (127.0.0.2) lets two share a port
        self.port = port or free_port()
        self.management_port = free_port()
        self.tls_ca = tls_ca
        names = ("localhost", LOOPBACK, address, f"{name}.example.test", *public_names)
        tls = tls_ca.issue(f"{name}-tls", names=names)
        config = {
            "pebble": {
                "listenAddress": f"{address}:{self.port}",
                "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
                "certificate": str(tls.cert),
                "privateKey": str(tls.key),
                "httpPort": free_port(),
                "tlsPort": free_port(),
                "ocspResponderURL": ocsp_url,
                "externalAccountBindingRequired": False,
            }
        }
        config_path = directory / "pebble.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {
            "PEBBLE_VA_ALWAYS_VALID": "1",
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",  # the default rejects 5% of good nonces
        }
        super().__init__(
            name, ["pebble", "-config", str(config_path)], directory / "pebble.log", env, directory
        )

    @property
    def base_url(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base_url}/dir"

    def start(self) -> None:
        super().start()
        self.wait_until(lambda: self.get_directory() is not None)

    def get_directory(self) -> dict[str, object]:
        response = requests.get(self.directory_url, verify=str(self.tls_ca.cert_path), timeout=2)
        response.raise_for_status()
        return dict(response.json())

    def management(self, path: str) -> bytes:
        """GET from Pebble's management API (`/roots/0`, `/intermediates/0`, ...)."""
        response = requests.get(
            f"https://{LOOPBACK}:{self.management_port}{path}",
            verify=str(self.tls_ca.cert_path),
            timeout=5,
        )
        response.raise_for_status()
        return response.content

    def save_intermediate(self, directory: Path) -> tuple[Path, Path]:
        """Write the current intermediate certificate and key, for an OCSP responder."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / "intermediate.pem", directory / "intermediate.key"
        cert.write_bytes(_first_pem(self.management("/intermediates/0")))
        key.write_bytes(self.management("/intermediate-keys/0"))
        return cert, key


def _first_pem(chain: bytes) -> bytes:
    """Pebble returns the intermediate followed by its chain; keep the first certificate."""
    end = b"-----END CERTIFICATE-----"
    return chain[: chain.index(end) + len(end)] + b"\n"
