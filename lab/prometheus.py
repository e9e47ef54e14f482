"""A real Prometheus (Debian's `prometheus`) on loopback, scraping the lab's daemon every second.

Rules are evaluated every second too. `query()` and `alerts()` use its HTTP API. The first
scrape comes a few seconds after start (service discovery updates at most every 5 s): wait
for `up == 1` (`scraping`) before a drill.

`target` is one HOST:PORT, or a list of static configs (`{"targets": [...], "labels": {...}}`)
for several controllers, each with its `site` as a target label (docs/several-sites.md,
"Monitoring several controllers"). `honor_labels` stays true, as the docs say: dnsfailover's
`instance` label names the CA instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from lab.net import LOOPBACK, free_port
from lab.process import ManagedProcess


class Prometheus(ManagedProcess):
    def __init__(
        self,
        directory: Path,
        target: str | Sequence[Mapping[str, Any]],
        rule_files: list[Path],
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        static = [{"targets": [target]}] if isinstance(target, str) else [dict(c) for c in target]
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            # dnsfailover's `instance` label names the CA instance: keep it (see the README).
            "scrape_configs": [
                {
                    "job_name": "dnsfailover",
                    "honor_labels": True,
                    "static_configs": static,
                }
            ],
        }
        path = directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        argv = [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--log.level=warn",
        ]
        super().__init__("prometheus", argv, directory / "prometheus.log", cwd=directory)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        super().start()
        self.wait_until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).ok)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        document = response.json()
        if document.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {document}")
        return list(document["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        document = requests.get(f"{self.url}/api/v1/alerts", timeout=5).json()
        return list(document["data"]["alerts"])

    def alert_state(self, name: str) -> str | None:
        """pending, firing, or None."""
        states = {a["state"] for a in self.alerts() if a["labels"].get("alertname") == name}
        return "firing" if "firing" in states else next(iter(states), None)

    def scraping(self, targets: int = 1) -> bool:
        """At least `targets` targets are up (`up == 1`)."""
        up = self.query('up{job="dnsfailover"}')
        return sum(r["value"][1] == "1" for r in up) >= targets
