"""The alert rules and the Grafana dashboard against a real Prometheus scraping the daemon.

Prometheus (Debian's package) scrapes the lab's daemon every second and evaluates the shipped
rules every second; only `for:` of DnsFailoverNoHealthyInstance is shortened (1m → 3s) so
the drill is short. Killing the active CA must show the flip in the failover counter and the
active-instance series; killing the standby too must make DnsFailoverNoHealthyInstance go
pending, then firing. Every PromQL expression of the dashboard must return data.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from lab import Lab
from lab.net import free_port
from lab.scenario import wait_for, write_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GOOD = 0x1234


@pytest.fixture
def prometheus_binary() -> None:
    if shutil.which("prometheus") is None:
        from tests.integration.conftest import _missing

        _missing("prometheus is missing", "apt-get install --no-install-recommends prometheus")


def _rules(tmp_path: Path) -> Path:
    document = yaml.safe_load((CONFIGS / "alerts.yaml").read_text())
    for rule in document["groups"][0]["rules"]:
        if rule["alert"] == "DnsFailoverNoHealthyInstance":
            rule["for"] = "3s"
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _dashboard_queries(service: str) -> list[str]:
    dashboard = json.loads((CONFIGS / "grafana" / "dnsfailover.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return [e.replace("$service", service).replace("$__rate_interval", "1m") for e in exprs]


def test_alerts_fire_and_every_dashboard_query_returns_data(
    lab: Lab, tmp_path: Path, isolated_network: None, prometheus_binary: None
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    port = free_port()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          metrics_listen=f"127.0.0.1:{port}")  # fmt: skip
    document = yaml.safe_load(config.read_text())
    for instance, pebble in zip(document["services"]["acme"]["instances"], (a, b), strict=True):
        responder = lab.ocsp_for(pebble)  # revocation runway for the dashboard
        responder.add(GOOD)
        instance["ocsp"] = {"url": responder.url, "issuer": str(responder.issuer_cert),
                            "serial": hex(GOOD), "required": False}  # fmt: skip
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    daemon = lab.daemon(config)
    prometheus = lab.prometheus(f"127.0.0.1:{port}", [_rules(tmp_path)])
    wait_for(prometheus.scraping, 30, "Prometheus scraping the daemon (up == 1)", step=0.2)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")

    def active(instance: str) -> bool:
        result = prometheus.query(
            f'dnsfailover_active_instance{{service="acme",instance="{instance}"}} == 1'
        )
        return bool(result)

    wait_for(lambda: active("ca-a"), 15, "Prometheus sees ca-a active", step=0.2)
    a.kill()
    wait_for(lambda: active("ca-b"), 20, "Prometheus sees ca-b active", step=0.2)
    flips = prometheus.query('dnsfailover_failovers_total{service="acme",reason="failover"}')
    assert [r["value"][1] for r in flips] == ["1"]
    assert prometheus.alert_state("DnsFailoverNoHealthyInstance") is None

    b.kill()  # and now none is healthy
    wait_for(lambda: prometheus.alert_state("DnsFailoverNoHealthyInstance") == "pending", 20,
             "the alert pending", step=0.1)  # fmt: skip
    wait_for(lambda: prometheus.alert_state("DnsFailoverNoHealthyInstance") == "firing", 20,
             "the alert firing", step=0.2)  # fmt: skip
    firing = [a for a in prometheus.alerts() if a["state"] == "firing"]
    alert = next(a for a in firing if a["labels"]["alertname"] == "DnsFailoverNoHealthyInstance")
    assert alert["labels"]["service"] == "acme" and alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"] == "acme: no healthy CA instance"

    empty = [q for q in _dashboard_queries("acme") if not prometheus.query(q)]
    assert not empty, f"dashboard queries without data: {empty}"
    variable = prometheus.query("count by (service) (dnsfailover_active_instance)")
    assert [r["metric"]["service"] for r in variable] == ["acme"]
    assert all(re.search(r"\$\w", q) is None for q in _dashboard_queries("acme"))
