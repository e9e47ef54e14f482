"""moto's Route 53 server on loopback (a real HTTP server; boto3 talks to it by endpoint_url)."""

from __future__ import annotations

from pathlib import Path
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

    def forget_change_history(self) -> None:
        """Work around moto 5.2: a CREATE identical to any earlier change fails with "already
        exists" while the name exists, even when the same batch DELETEs it first, so a record
        cannot be swapped back to a value it once had. Real Route 53 has no such rule. Keeps,
        in each zone's journal (moto runs in this process), only the latest CREATE or UPSERT
        of each name and type: moto checks a DELETE against it."""
        from moto.route53.models import ChangeList, route53_backends

        for account in route53_backends.values():
            for backend in account.values():
                for zone in backend.zones.values():
                    latest: dict[tuple[str, str], Any] = {}
                    for change in zone.rr_changes:
                        if change["Action"] in ("CREATE", "UPSERT"):
                            record = change["ResourceRecordSet"]
                            latest[(record["Name"], record["Type"])] = change
                    zone.rr_changes = ChangeList(latest.values())

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

    def write_credentials(self, path: Path) -> Path:
        """An AWS shared-credentials file with the lab's fake keys, for `credentials_file`."""
        path.write_text(
            f"[default]\naws_access_key_id = {FAKE_KEY_ID}\naws_secret_access_key = {FAKE_SECRET}\n"
        )
        return path

    def zone_with_cname(self, zone: str, name: str, target: str) -> tuple[Any, str]:
        """A hosted zone holding `name` CNAME `target` (TTL 60); a boto3 client and its id."""
        import boto3

        client = boto3.client("route53", **self.client_kwargs())
        created = client.create_hosted_zone(Name=zone, CallerReference=f"lab-{name}")
        zone_id = str(created["HostedZone"]["Id"])
        record = {"Name": name, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": target}]}
        client.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": record}]},
        )
        return client, zone_id
