"""`python -m bench [PART ...]`: run benchmarks, write bench/results/PART.json and RESULTS.md.

Parts: flap, failover, connect, thaw, footprint, scale, isolation, clients, practice,
coordination (all when none is named).
Run it through `make bench`, which installs what the benchmarks need and isolates the network
(loopback only). Each part's JSON records the machine, the commit and the settings next to
the figures; RESULTS.md is rendered from every JSON file present, so one part can be re-run
alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PARTS = (
    "flap",
    "failover",
    "connect",
    "thaw",
    "footprint",
    "scale",
    "isolation",
    "clients",
    "practice",
    "coordination",
)
TITLES = {
    "flap": "Flap resistance (simulated clock)",
    "failover": "Failover time (interval 1 s, fall 2, timeout 1 s)",
    "footprint": "Footprint",
    "scale": "Probing at scale",
    "connect": "A frozen CA and connect_timeout (interval 1 s, timeout 1 s, fall 1)",
    "thaw": "Failback after a thaw (rise 1, failback_after 0s)",
    "isolation": "One slow write holds nothing else",
    "clients": "What ACME clients see across a flip (lego through the public name)",
    "practice": "Practice runs as ACME clients see them (lego through unbound)",
    "coordination": "Several controllers (three sites, 3-member etcd, lease_ttl 2 s)",
}


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def commit() -> str:
    """HEAD, with "-dirty" if anything but the benchmark results differs from it."""

    def git(*args: str) -> str:
        argv = ["git", "-C", str(HERE.parent), *args]
        done = subprocess.run(argv, capture_output=True, text=True)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", ".", ":!bench/results", ":!bench/RESULTS.md")
    return head + ("-dirty" if changed else "")


def previous(part: str) -> dict[str, Any] | None:
    """The figures a run replaces (commit, date, results without samples), for a report to
    set next to its own; a quick run replaces nothing, so its predecessor's are kept."""
    path = RESULTS / f"{part}.json"
    if not path.exists():
        return None
    document = json.loads(path.read_text())
    if document.get("quick"):
        return document["results"].get("previous")  # type: ignore[no-any-return]

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("samples", "previous")}
        return value

    return {
        "commit": document["commit"],
        "date": document["date"],
        "results": strip(document["results"]),
    }


def render() -> str:
    lines = [
        "# Benchmark results",
        "",
        "Rendered by `python -m bench` from `bench/results/*.json`; reproduce with `make bench`",
        "(or `make bench PARTS=failover`). Shared, noisy machines: each figure is repeated and",
        "reported as median and p95; peers are measured in the same run.",
    ]
    for part in PARTS:
        path = RESULTS / f"{part}.json"
        if not path.exists():
            continue
        document = json.loads(path.read_text())
        module = importlib.import_module(f"bench.{part}")
        m = document["machine"]
        lines += [
            "",
            f"## {TITLES[part]}",
            "",
            f"Commit `{document['commit']}`, {document['date']}, {m['cpu']}, {m['cores']} cores, "
            f"Python {m['python']}; {document['seconds']:.0f} s.",
            *(
                [
                    f"Load average (1 min) at start / end: {document['load'][0]:.1f} / "
                    f"{document['load'][1]:.1f}"
                    + (f"; {document['note']}" if "note" in document else ".")
                ]
                if "load" in document
                else []
            ),
            "",
            *module.report(document["results"]),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=", ".join(PARTS))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, a smoke run")
    parser.add_argument(
        "--render", action="store_true", help="only render RESULTS.md from the JSON results"
    )
    args = parser.parse_args(argv)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    RESULTS.mkdir(exist_ok=True)
    for part in [] if args.render else args.parts or PARTS:
        module = importlib.import_module(f"bench.{part}")
        print(f"bench: {part} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        load = os.getloadavg()[0]
        results = module.run(quick=args.quick)
        results["previous"] = previous(part)
        document = {
            "part": part,
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "quick": args.quick,
            "seconds": time.monotonic() - started,
            "load": [load, os.getloadavg()[0]],
            "results": results,
        }
        (RESULTS / f"{part}.json").write_text(json.dumps(document, indent=1) + "\n")
        print("\n".join(module.report(results)), file=sys.stderr, flush=True)
    (HERE / "RESULTS.md").write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
