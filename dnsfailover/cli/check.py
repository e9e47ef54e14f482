"""`dnsfailover check`: probe every instance once, concurrently, and print what each saw.

One round is not enough for rise/fall, so here an instance is up when every required check
answered healthy (or overloaded: alive, shedding load) in this round. Exit 1 when a service has
no instance up.
The top layer: may import anything below it; nothing imports it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dnsfailover.controller.oneshot import Observation, one_round_health, probe_once
from dnsfailover.controller.runtime import Runtime
from dnsfailover.health import State


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h"


def render_table(observations: list[Observation], up: dict[str, list[str]]) -> str:
    lines = []
    header = ("INSTANCE", "CHECK", "OUTCOME", "LATENCY", "RUNWAY", "TLS", "REASON")
    for service in dict.fromkeys(o.job.service for o in observations):
        mine = [o for o in observations if o.job.service == service]
        total = len({o.job.instance for o in mine})
        lines.append(f"{service}: {len(up.get(service, []))} of {total} instances up")
        table = [header]
        for o in mine:
            result = o.result
            tls = "-" if result.tls_days_left is None else f"{result.tls_days_left:.0f}d"
            check = result.check + ("" if o.job.probe.required else " (info)")
            reason = result.reason + "".join(f" [warning: {w}]" for w in result.warnings)
            latency = f"{result.latency * 1000:.0f}ms"
            runway = _format_seconds(result.runway)
            table.append(
                (o.job.instance, check, result.outcome.value, latency, runway, tls, reason)
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        for line in table:
            cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            lines.append("  " + "  ".join([*cells, line[-1]]))
    return "\n".join(lines)


def as_json(observations: list[Observation], up: dict[str, list[str]]) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for o in observations:
        entry = services.setdefault(
            o.job.service, {"instances_up": up[o.job.service], "results": []}
        )
        entry["results"].append(
            {"instance": o.job.instance, "required": o.job.probe.required, **o.result.as_dict()}
        )
    return {"services": services}


def run_check(runtime: Runtime, only: str | None, want_json: bool) -> int:
    jobs = [j for j in runtime.jobs if only is None or j.service == only]
    observations = probe_once(jobs)
    health = one_round_health(observations)
    up = {
        service: [name for name, h in instances.items() if h.state is State.HEALTHY]
        for service, instances in health.items()
    }
    if want_json:
        json.dump(as_json(observations, up), sys.stdout, indent=2, default=str)
        print()
    else:
        print(render_table(observations, up))
    return 1 if any(not names for names in up.values()) else 0
