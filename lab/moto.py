"""moto's Route 53 server on loopback (a real HTTP server; boto3 talks to it by endpoint_url)."""

from __future__ import annotations

from typing import Any

import requests

from lab.net import LOOPBACK, free_port
from lab.process import LabError

FAKE_KEY_ID = "AKIALABLABLABLAB0000"
FAKE_SECRET = "lab-secret-that-must-never-be-logged-0000"


class MotoServer:
    """moto runs in a thread of this process: stopping it stops the thread and frees the port."""

    name = "moto"

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server: Any = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
        self.log_path = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._server.start()
        try:
            requests.get(f"{self.endpoint_url}/moto-api/", timeout=5)
        except requests.RequestException as e:
            raise LabError(f"moto did not answer on {self.endpoint_url}: {e}") from e
        self.reset()  # moto's backends are global to this process: start from nothing

    def reset(self) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=5)

    def stop(self) -> None:
        self._server.stop()

    def log_tail(self, lines: int = 40) -> str:
        return "(moto runs in-process; its log is pytest's captured output)"

    def client_kwargs(self) -> dict[str, str]:
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": FAKE_KEY_ID,
            "aws_secret_access_key": FAKE_SECRET,
        }
