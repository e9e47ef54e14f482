"""Footprint: start-up to READY=1, idle CPU, RSS at 10, 100 and 1,000 instances.

Targets are nginx ports (lab/nginx.py) that answer like an ACME server; the daemon runs
`dnsfailover run` (no -v) with a zone-file provider in dry-run mode, services of 10 instances,
interval 10 s.

- Start-up: from exec to the READY=1 datagram on $NOTIFY_SOCKET (a socket of this process),
  which the daemon sends once every probe has answered once. Repeated.
- boto3: whether building the daemon (config, runtime, providers) imports it, for a
  zone-file and for a Route 53 config (tests/test_imports.py asserts the same).
- Idle CPU: 10 instances, CPU seconds of the daemon over 5 minutes, after it is ready.
- RSS: VmRSS after two rounds at each size.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.procstat import cpu_seconds, memory_mb
from bench.scale import INTERVAL, write_config
from bench.stats import summary
from lab import Lab
from lab.nginx import NginxTargets
from lab.process import ManagedProcess

BOTO_CHECK = """
import sys
from pathlib import Path
from dnsfailover.controller.daemon import Daemon
Daemon(Path(sys.argv[1]))
print("boto3" in sys.modules)
"""


def _start(lab: Lab, config: Path, notify: Path) -> tuple[ManagedProcess, float]:
    """Start the daemon (the lab stops it at close, whatever happens); return it and the
    seconds until READY=1."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        notify.unlink(missing_ok=True)
        listener.bind(str(notify))
        listener.settimeout(60)
        daemon = lab._own(
            ManagedProcess(
                "dnsfailover",
                [sys.executable, "-m", "dnsfailover", "run", "-c", str(config)],
                config.parent / "daemon.log",
                env={"NOTIFY_SOCKET": str(notify)},
            )
        )
        started = time.monotonic()
        daemon.start()
        while True:
            message = listener.recv(4096).decode()
            if "READY=1" in message.split("\n"):
                return daemon, time.monotonic() - started


def _directory(lab: Lab, name: str) -> Path:
    path = lab.directory / name
    path.mkdir()
    return path


def _boto3_imported(config: Path) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", BOTO_CHECK, str(config)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip() == "True"


def _route53_config(directory: Path, config: Path) -> Path:
    text = config.read_text()
    start = text.index("providers:")
    end = text.index("services:")
    route53 = (
        "providers:\n  zone:\n    type: route53\n    hosted_zone_id: Z123\n"
        "    endpoint_url: http://127.0.0.1:9\n"
    )
    changed = directory / "route53.yaml"
    changed.write_text(text[:start] + route53 + text[end:])
    return changed


def run(quick: bool = False) -> dict[str, Any]:
    idle_seconds, starts, sizes = (60.0, 3, (10, 100)) if quick else (300.0, 10, (10, 100, 1000))
    results: dict[str, Any] = {"settings": {"interval": INTERVAL, "idle_seconds": idle_seconds}}
    with Lab() as lab:
        nginx = lab._own(NginxTargets(lab.directory / "nginx", lab.tls, max(sizes)))
        nginx.start()

        directory = _directory(lab, "startup")
        config = write_config(directory, lab, nginx, 10)
        times = []
        for _ in range(starts):
            daemon, seconds = _start(lab, config, directory / "notify")
            times.append(seconds)
            daemon.stop()
        results["ready_seconds"] = summary(times) | {"samples": times}
        results["boto3_imported"] = {
            "zonefile": _boto3_imported(config),
            "route53": _boto3_imported(_route53_config(directory, config)),
        }

        rss = {}
        for count in sizes:
            directory = _directory(lab, f"size-{count}")
            daemon, _ = _start(
                lab, write_config(directory, lab, nginx, count), directory / "notify"
            )
            try:
                time.sleep(2 * INTERVAL)
                rss[str(count)] = memory_mb(daemon.pid)
                if count == 10:
                    before = cpu_seconds(daemon.pid)
                    time.sleep(idle_seconds)
                    used = cpu_seconds(daemon.pid) - before
                    results["idle"] = {
                        "instances": 10,
                        "cpu_seconds": used,
                        "percent_of_one_core": used / idle_seconds * 100,
                    }
            finally:
                daemon.stop()
        results["rss_mb"] = rss
    return results


def report(results: dict[str, Any]) -> list[str]:
    ready, idle = results["ready_seconds"], results["idle"]
    boto = results["boto3_imported"]
    lines = [
        "| measure | result | target |",
        "|---|---|---|",
        f"| start-up to READY=1, 10 instances ({ready['n']} starts) | median "
        f"{ready['median']:.2f} s, p95 {ready['p95']:.2f} s | ≤ 2 s |",
        f"| boto3 imported with a zone-file / a Route 53 provider | {boto['zonefile']} / "
        f"{boto['route53']} | False / (True) |",
        f"| idle CPU, 10 instances, {results['settings']['idle_seconds']:.0f} s | "
        f"{idle['cpu_seconds']:.2f} CPU s = {idle['percent_of_one_core']:.2f}% of one core "
        "| ≤ 1% |",
    ]
    for count, memory in results["rss_mb"].items():
        lines.append(
            f"| RSS, {count} instances, after two rounds | {memory['rss_mb']:.0f} MB "
            f"(peak {memory['peak_rss_mb']:.0f}) | ≤ 120 MB at 1,000 |"
        )
    return lines
