"""The alert rules and the Grafana dashboard against a real Prometheus scraping the daemon.

Prometheus (Debian's package) scrapes the lab's daemon every second and evaluates the shipped
rules every second; only `for:` of DnsFailoverNoHealthyInstance is shortened (1m → 3s) so
the drill is short. Killing the active CA must show the flip in the failover counter and the
active-instance series; killing the standby too must make DnsFailoverNoHealthyInstance go
pending, then firing. Every PromQL expression of the dashboard's per-service panels must
return data.

With several controllers (the coordination lab: three sites, each daemon's metrics on its
site's address), Prometheus scrapes all three as docs/several-sites.md's "Monitoring several
controllers" says (one static config per target with its `site` as a target label,
`honor_labels: true`), and every expression of the dashboard's coordination row must give
the lab's truth: one leader, three sites reporting and fresh, DNS reachable everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import Lab
from lab.coordination import METRICS_PORT, SITES, Cluster
from lab.net import free_port
from lab.process import LabError
from lab.prometheus import Prometheus
from lab.scenario import wait_for, write_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GOOD = 0x1234
COORDINATION_ROW = "Coordination (several controllers)"


@pytest.fixture
def prometheus_binary() -> None:
    if shutil.which("prometheus") is None:
        from tests.prerequisites import missing as _missing

        _missing("prometheus is missing", "apt-get install --no-install-recommends prometheus")


def _rules(tmp_path: Path) -> Path:
    document = yaml.safe_load((CONFIGS / "alerts.yaml").read_text())
    for rule in document["groups"][0]["rules"]:
        if rule["alert"] == "DnsFailoverNoHealthyInstance":
            rule["for"] = "3s"
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _dashboard_panels(service: str, check_interval: str = "1") -> dict[str, dict[str, list[str]]]:
    """Row title → panel title → the panel's PromQL, with the dashboard's variables filled."""
    dashboard = json.loads((CONFIGS / "grafana" / "dnsfailover.json").read_text())
    rows: dict[str, dict[str, list[str]]] = {}
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        rows.setdefault(row, {})[panel["title"]] = [
            t["expr"].replace("$service", service).replace("$__rate_interval", "1m")
            .replace("$check_interval", check_interval)
            for t in panel.get("targets", [])
        ]  # fmt: skip
    return rows


def _dashboard_queries(service: str) -> list[str]:
    """The per-service panels' expressions (the coordination row needs several controllers)."""
    rows = _dashboard_panels(service)
    return [e for row, panels in rows.items() if row != COORDINATION_ROW
            for exprs in panels.values() for e in exprs]  # fmt: skip


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


Result = list[dict[str, Any]]


def _by(result: Result, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


def _per_site(result: Result) -> dict[str, float]:
    return {site: value for (site,), value in _by(result, "site").items()}


def test_the_coordination_row_against_three_controllers_scraped_by_site(
    lab: Lab, tmp_path: Path, isolated_network: None, prometheus_binary: None
) -> None:
    cluster = Cluster(lab, tmp_path / "sites")
    targets = [{"targets": [f"{cluster.sites[s].address}:{METRICS_PORT}"], "labels": {"site": s}}
               for s in SITES]  # fmt: skip
    prometheus = Prometheus(tmp_path / "prometheus", targets, [])
    prometheus.start()  # first, so that its first scrape (≈ 5 s) overlaps the lab's start
    try:
        _coordination_row(cluster, prometheus)
    finally:
        prometheus.stop()


def _coordination_row(cluster: Cluster, prometheus: Prometheus) -> None:
    leader = cluster.settled()
    token = float(cluster.coordination(leader)["token"])
    every = set(SITES)
    # The lab checks every 1 s: a reporter is fresh while its age is at most 3 s.
    expected: dict[str, Callable[[list[Result]], bool]] = {
        "Leader by site": lambda r: _per_site(r[0]) == {s: float(s == leader) for s in every},
        "Writing allowed by site": lambda r: (
            _per_site(r[0]) == {s: float(s == leader) for s in every}
        ),
        "DNS reachable by site": lambda r: _per_site(r[0]) == dict.fromkeys(every, 1.0),
        "Sites reporting and fresh, as each site sees them": lambda r: (
            _per_site(r[0]) == dict.fromkeys(every, 3.0) == _per_site(r[1])
        ),
        "Report age per reporter": lambda r: (
            set(_by(r[0], "site", "reporter")) == {(s, o) for s in every for o in every}
            and all(age <= 3 for age in _by(r[0], "site", "reporter").values())
        ),
        "Fencing token by site": lambda r: _per_site(r[0]) == dict.fromkeys(every, token),
        "Held quorum verdicts": lambda r: (
            _by(r[0], "service", "instance", "verdict")
            == {("acme", i, v): 0.0 for i in ("ca-a", "ca-b") for v in ("split", "unknown")}
        ),
    }
    panels = _dashboard_panels("acme", check_interval="1")[COORDINATION_ROW]
    assert set(panels) == set(expected), "every panel of the coordination row has a case"

    wait_for(lambda: prometheus.scraping(targets=3), 30, "Prometheus scraping all three sites",
             step=0.2)  # fmt: skip
    wrong: dict[str, list[Result]] = {}

    def as_expected() -> bool:
        wrong.clear()
        for title, exprs in panels.items():
            results = [prometheus.query(e) for e in exprs]
            if not expected[title](results):
                wrong[title] = results
        return not wrong

    try:
        wait_for(as_expected, 20, "the coordination panels as the lab is", step=0.2)
    except LabError:
        pytest.fail(f"leader {leader}, token {token:g}; panels not as expected: {wrong}")
    # The target label is what keeps the three controllers' series apart: each site's
    # quorum_held (no site label of its own) carries its target's.
    held = prometheus.query("count by (site) (dnsfailover_quorum_held)")
    assert _per_site(held) == dict.fromkeys(every, 4.0)
    # honor_labels: true keeps dnsfailover's own `site` and `instance`: nothing is renamed.
    assert prometheus.query('{job="dnsfailover", exported_site=~".+"}') == []
    assert prometheus.query('{job="dnsfailover", exported_instance=~".+"}') == []
    assert all(re.search(r"\$\w", e) is None for exprs in panels.values() for e in exprs)
