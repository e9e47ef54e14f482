"""A frozen CA with and without `checks.connect_timeout` (interval 1 s, timeout 1 s, fall 1).

SIGSTOP leaves the CA's kernel completing TCP handshakes; the probe's TLS handshake then hangs
until the probe's whole timeout. `connect_timeout: 250ms` bounds TCP connect + TLS handshake,
so the probe fails 0.25 s into the hang. Measured as in `failover.py`: freeze → the BIND
secondary serving the new target, and freeze → the deciding probe result (detection).
"""

from __future__ import annotations

from typing import Any

from bench.failover import FAST, _measure, _summaries
from lab import Lab
from lab.scenario import NAME, write_config

SHAPES = {
    "frozen_fall1": {"interval": "1s", "timeout": "1s", "rise": 2, "fall": 1},
    "frozen_fall1_connect_250ms": {
        "interval": "1s",
        "timeout": "1s",
        "connect_timeout": "250ms",
        "rise": 2,
        "fall": 1,
    },
}


def _shape(checks: dict[str, Any], reps: int) -> dict[str, Any]:
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        bind = lab.bind()
        config = write_config(
            lab.directory / "config.yaml", lab, bind, [a, b], {**FAST, "checks": checks}
        )
        daemon = lab.daemon(config)

        def serves(target: str) -> bool:
            return bind.secondary.rrset(NAME, "CNAME") == {target}

        return _summaries(_measure(daemon, config, serves, a.freeze, a.thaw, reps))


def run(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 20
    return {"settings": {"reps": reps}} | {
        name: _shape(checks, reps) for name, checks in SHAPES.items()
    }


def report(results: dict[str, Any]) -> list[str]:
    lines = [
        f"{results['settings']['reps']} repetitions each; median / p95 in seconds.",
        "",
        "| shape | detection | total (freeze → secondary serves) |",
        "|---|---|---|",
    ]
    for name in SHAPES:
        r = results[name]
        d, t = r["detection"], r["total"]
        lines.append(
            f"| {name} | {d['median']:.2f} / {d['p95']:.2f} | {t['median']:.2f} / {t['p95']:.2f} |"
        )
    return lines
