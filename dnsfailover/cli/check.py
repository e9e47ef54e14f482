"""`dnsfailover check`: probe every instance once, concurrently, and print what each saw.

One round is not enough for rise/fall, so here an instance is up when every required check
answered healthy (or overloaded: alive, shedding load) in this round. Exit 1 when a service has
no instance up.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dnsfailover.config.models import Config
from dnsfailover.probes import Outcome, ProbeResult, build_probes

UP = (Outcome.HEALTHY, Outcome.OVERLOADED)


@dataclass(frozen=True)
class Row:
    service: str
    instance: str
    required: bool
    result: ProbeResult


def probe_all(config: Config, only: str | None = None, workers: int = 32) -> list[Row]:
    jobs = []
    for service_name, service in config.services.items():
        if only is not None and service_name != only:
            continue
        for instance in service.instances:
            for probe in build_probes(instance):
                jobs.append((service_name, instance.name, probe, service.checks.timeout))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = [
            (s, i, p, pool.submit(p.run, time.monotonic() + timeout)) for s, i, p, timeout in jobs
        ]
        return [Row(s, i, p.required, f.result()) for s, i, p, f in futures]


def instances_up(config: Config, rows: list[Row]) -> dict[str, list[str]]:
    """Per service, the instances whose required checks all answered healthy or overloaded."""
    up: dict[str, list[str]] = {}
    for service_name, service in config.services.items():
        names = []
        for instance in service.instances:
            mine = [r for r in rows if r.service == service_name and r.instance == instance.name]
            if mine and all(r.result.outcome in UP for r in mine if r.required):
                names.append(instance.name)
        up[service_name] = names
    return up


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h"


def render_table(rows: list[Row], up: dict[str, list[str]]) -> str:
    lines = []
    header = ("INSTANCE", "CHECK", "OUTCOME", "LATENCY", "RUNWAY", "TLS", "REASON")
    for service in dict.fromkeys(r.service for r in rows):
        total = len({r.instance for r in rows if r.service == service})
        lines.append(f"{service}: {len(up.get(service, []))} of {total} instances up")
        table = [header]
        for row in (r for r in rows if r.service == service):
            result = row.result
            tls = "-" if result.tls_days_left is None else f"{result.tls_days_left:.0f}d"
            check = result.check + ("" if row.required else " (info)")
            reason = result.reason + "".join(f" [warning: {w}]" for w in result.warnings)
            table.append(
                (
                    row.instance,
                    check,
                    result.outcome.value,
                    f"{result.latency * 1000:.0f}ms",
                    _format_seconds(result.runway),
                    tls,
                    reason,
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        for line in table:
            cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            lines.append("  " + "  ".join([*cells, line[-1]]))
    return "\n".join(lines)


def as_json(rows: list[Row], up: dict[str, list[str]]) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for row in rows:
        service = services.setdefault(row.service, {"instances_up": up[row.service], "results": []})
        service["results"].append(
            {"instance": row.instance, "required": row.required, **row.result.as_dict()}
        )
    return {"services": services}


def run_check(config: Config, only: str | None, want_json: bool) -> int:
    rows = probe_all(config, only)
    up = instances_up(config, rows)
    if only is not None:
        up = {only: up[only]}
    if want_json:
        json.dump(as_json(rows, up), sys.stdout, indent=2, default=str)
        print()
    else:
        print(render_table(rows, up))
    return 1 if any(not names for names in up.values()) else 0
