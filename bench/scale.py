"""Probing at scale: our daemon and prometheus-blackbox-exporter on the same nginx targets.

N instances (100, 1,000, 3,000), each an nginx port that answers like an ACME server; every
instance is checked every 10 s: GET the directory, then HEAD newNonce, TLS verified against the
lab CA. A "probe" below is one instance checked (both requests).

- Ours: `dnsfailover run` (no -v), services of 10 instances, a zone-file provider, dry run.
- Reference: the blackbox exporter, modules acme_directory + acme_nonce; this process is the
  scraper and, like our daemon, runs at most 64 instance checks at once. "blackbox" gives
  each instance its own phase of the interval (as Prometheus spreads its scrapes, and as our
  daemon does); "blackbox_burst" starts every instance at the top of each round, which costs
  the exporter less CPU per probe (fewer wake-ups) and more latency. The CPU ratio is taken
  against whichever of the two is cheaper.

The two run one after the other in the same benchmark run, never at the same time (two cores).
Each is measured over `windows` windows of `rounds` rounds after a warm-up round: CPU seconds
of the prober's process (from /proc, so the scraper's own CPU is not counted for blackbox),
probes done (from nginx's access log, the same for both), the longest gap between two probes
of one instance (a round is complete inside its interval when no gap exceeds it), probe latency
(ours: every result the daemon reports in health.json; blackbox: probe_duration_seconds of each
module, summed per instance), and RSS.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.procstat import cpu_seconds, memory_mb
from bench.stats import percentile, summary
from lab import Lab
from lab.blackbox import BlackboxExporter
from lab.nginx import NginxTargets
from lab.scenario import DaemonProcess, wait_for

INTERVAL = 10.0
PER_SERVICE = 10
THREADS = 64  # our daemon's MAX_PROBE_THREADS, for the scraper of the blackbox exporter

ZONE_HEAD = """\
$ORIGIN example.test.
$TTL 60
@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@ IN NS ns.example.test.
ns IN A 127.0.0.1
"""


def write_config(directory: Path, lab: Lab, nginx: NginxTargets, count: int) -> Path:
    """`count` instances in services of PER_SERVICE, on the first `count` nginx ports."""
    ports = list(nginx.ports)[:count]
    zone = directory / "bench.zone"
    services: dict[str, Any] = {}
    lines = [ZONE_HEAD]
    for first in range(0, count, PER_SERVICE):
        key = f"svc-{first // PER_SERVICE}"
        members = ports[first : first + PER_SERVICE]
        services[key] = {
            "provider": "zone",
            "name": f"{key}.example.test.",
            "checks": {"interval": f"{INTERVAL:g}s", "timeout": "5s"},
            "instances": [
                {
                    "name": f"i{port}",
                    "target": f"i{port}.example.test.",
                    "acme": {
                        "directory": nginx.directory_url(port),
                        "ca_bundle": str(lab.tls.cert_path),
                    },
                }
                for port in members
            ],
        }
        lines.append(f"{key} IN CNAME i{members[0]}.example.test.\n")
    zone.write_text("".join(lines))
    config = directory / "config.yaml"
    document = {
        "state_dir": str(directory / "state"),
        "control_socket": str(directory / "control"),
        "dry_run": True,
        "providers": {"zone": {"type": "zonefile", "path": str(zone), "zone": "example.test."}},
        "services": services,
    }
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def _gaps(requests_seen: list[tuple[float, int, str]]) -> dict[str, Any]:
    """Probes done and the gaps between two probes of one instance, from the access log."""
    directory = sorted((at, port) for at, port, what in requests_seen if what == "GET /dir")
    by_port: dict[int, list[float]] = defaultdict(list)
    for at, port in directory:
        by_port[port].append(at)
    gaps = [b - a for times in by_port.values() for a, b in itertools.pairwise(times)]
    return {"probes": len(directory), "gaps": gaps}


def _measure_window(pid: int, nginx: NginxTargets, rounds: int, latencies: Any) -> dict[str, Any]:
    """CPU, probes and rounds of one window; `latencies()` → latency samples in the window."""
    started, cpu = time.time(), cpu_seconds(pid)
    time.sleep(rounds * INTERVAL)
    cpu = cpu_seconds(pid) - cpu
    ended = time.time()
    seen = [r for r in nginx.requests_since(started) if r[0] < ended]
    window = _gaps(seen)
    window["cpu_seconds"] = cpu
    window["cpu_per_1000"] = cpu / window["probes"] * 1000 if window["probes"] else float("nan")
    window["latencies"] = latencies(started, ended)
    window.update(memory_mb(pid))
    return window


def _ours(lab: Lab, nginx: NginxTargets, count: int, windows: int, rounds: int) -> list[Any]:
    directory = lab.directory / f"ours-{count}"
    directory.mkdir()
    config = write_config(directory, lab, nginx, count)
    daemon = lab._own(DaemonProcess(config, verbose=False, start_timeout=120))  # stopped at close
    started = time.monotonic()
    daemon.start()
    samples: dict[tuple[str, float], float] = {}
    stop = threading.Event()

    def collect() -> None:  # the daemon rewrites health.json every cycle (10 s)
        while not stop.is_set():
            health = daemon.health() or {"services": {}}
            for service in health["services"].values():
                for name, instance in service["instances"].items():
                    result = instance["checks"]["acme"]["result"]
                    if result is not None:
                        samples[(name, result["observed_at"])] = result["latency"]
            stop.wait(3)

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    try:
        wait_for(lambda: _settled(daemon, count), 180, f"{count} instances healthy")
        ready = time.monotonic() - started
        time.sleep(INTERVAL)  # one more round: steady state

        def latencies(start: float, end: float) -> list[float]:
            return [v for (_, at), v in list(samples.items()) if start <= at < end]

        measured = [_measure_window(daemon.pid, nginx, rounds, latencies) for _ in range(windows)]
        for window in measured:
            window["settled_seconds"] = ready
        return measured
    finally:
        stop.set()
        daemon.stop()


def _settled(daemon: DaemonProcess, count: int) -> bool:
    health = daemon.health()
    if health is None:
        return False
    states = [i["state"] for s in health["services"].values() for i in s["instances"].values()]
    return len(states) == count and all(state == "healthy" for state in states)


def _blackbox(
    lab: Lab, nginx: NginxTargets, count: int, windows: int, rounds: int, spread: bool
) -> list[Any]:
    exporter = lab._own(BlackboxExporter(lab.directory / f"blackbox-{count}-{spread}", lab.tls))
    exporter.start()
    ports = list(nginx.ports)[:count]
    local = threading.local()
    samples: list[tuple[float, float, bool]] = []  # (started, seconds, success)
    stop = threading.Event()

    def check(port: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        at = time.time()
        first = exporter.probe(session, "acme_directory", nginx.directory_url(port))
        second = exporter.probe(session, "acme_nonce", f"https://127.0.0.1:{port}/nonce")
        seconds = first["probe_duration_seconds"] + second["probe_duration_seconds"]
        samples.append((at, seconds, first["probe_success"] == second["probe_success"] == 1))

    def scrape() -> None:  # as Prometheus does: each target at its own phase of the interval
        with ThreadPoolExecutor(THREADS) as pool:
            start = time.monotonic()
            for n in itertools.count():
                phase = (n % count) / count * INTERVAL if spread else 0.0
                due = start + (n // count) * INTERVAL + phase
                stop.wait(max(0.0, due - time.monotonic()))
                if stop.is_set():
                    return
                pool.submit(check, ports[n % count])

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        time.sleep(INTERVAL * 2)  # warm-up: two rounds

        def latencies(start: float, end: float) -> list[float]:
            return [s for at, s, _ in list(samples) if start <= at < end]

        measured = [_measure_window(exporter.pid, nginx, rounds, latencies) for _ in range(windows)]
        failed = sum(1 for _, _, ok in samples if not ok)
        for window in measured:
            window["failed_probes"] = failed
        return measured
    finally:
        stop.set()
        scraper.join()
        exporter.stop()


def _digest(windows: list[dict[str, Any]], count: int, rounds: int) -> dict[str, Any]:
    latencies = [v for w in windows for v in w["latencies"]]
    gaps = [g for w in windows for g in w["gaps"]]
    return {
        "instances": count,
        "windows": len(windows),
        "probes": sum(w["probes"] for w in windows),
        "expected_probes": count * rounds * len(windows),
        "gap_seconds": {
            "median": percentile(gaps, 50),
            "p99": percentile(gaps, 99),
            "max": max(gaps) if gaps else float("nan"),
        },
        "latency_ms": {
            "n": len(latencies),
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
        },
        "cpu_seconds_per_1000_probes": summary([w["cpu_per_1000"] for w in windows]),
        "cpu_cores": statistics.median(w["cpu_seconds"] for w in windows) / (rounds * INTERVAL),
        "rss_mb": max(w["rss_mb"] for w in windows),
        "peak_rss_mb": max(w["peak_rss_mb"] for w in windows),
        **{k: windows[0][k] for k in ("settled_seconds", "failed_probes") if k in windows[0]},
    }


def run(quick: bool = False) -> dict[str, Any]:
    sizes, windows, rounds = ((100, 1000), 1, 2) if quick else ((100, 1000, 3000), 3, 3)
    results: dict[str, Any] = {
        "settings": {"interval": INTERVAL, "windows": windows, "rounds": rounds}
    }
    with Lab() as lab:
        nginx = lab._own(NginxTargets(lab.directory / "nginx", lab.tls, max(sizes), True))
        nginx.start()
        for count in sizes:
            ours = _digest(_ours(lab, nginx, count, windows, rounds), count, rounds)
            spread = _digest(_blackbox(lab, nginx, count, windows, rounds, True), count, rounds)
            burst = _digest(_blackbox(lab, nginx, count, windows, rounds, False), count, rounds)
            cheapest = min(d["cpu_seconds_per_1000_probes"]["median"] for d in (spread, burst))
            ratio = ours["cpu_seconds_per_1000_probes"]["median"] / cheapest
            results[str(count)] = {
                "ours": ours,
                "blackbox": spread,
                "blackbox_burst": burst,
                "cpu_ratio": ratio,
            }
    return results


def report(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    lines = [
        f"Interval {s['interval']:g} s; {s['windows']} windows of {s['rounds']} rounds per "
        "prober and size. Probe = one instance checked: GET directory + HEAD newNonce, TLS "
        "verified. CPU = the prober's process only. Latency for blackbox = the sum of its two "
        "module probes.",
        "",
        "| instances | prober | probes done / expected | gap between probes of an instance "
        "med / p99 / max (s) | latency p50 / p99 (ms) | CPU s per 1,000 probes med (p95) | "
        "cores used | RSS / peak (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        if key in ("settings", "previous"):
            continue
        for prober in ("ours", "blackbox", "blackbox_burst"):
            if prober not in r:
                continue
            d = r[prober]
            cpu, gap = d["cpu_seconds_per_1000_probes"], d["gap_seconds"]
            lines.append(
                f"| {key} | {prober} | {d['probes']} / {d['expected_probes']} "
                f"| {gap['median']:.2f} / {gap['p99']:.2f} / {gap['max']:.2f} "
                f"| {d['latency_ms']['p50']:.1f} / {d['latency_ms']['p99']:.1f} "
                f"| {cpu['median']:.2f} ({cpu['p95']:.2f}) | {d['cpu_cores']:.2f} "
                f"| {d['rss_mb']:.0f} / {d['peak_rss_mb']:.0f} |"
            )
        lines.append(
            f"| {key} | **CPU per probe, ours / blackbox's cheaper mode** | {r['cpu_ratio']:.2f} |"
        )
    lines += [
        "",
        "Both probers give each instance its own phase of the interval, so there is no burst"
        " whose wall time could be timed; a round is complete inside its interval when every"
        " instance was probed (probes done = expected) and no instance waited much longer than"
        " 10 s between two probes (the gap columns).",
        "",
        "Targets at 1,000 instances: every round inside its 10 s interval, p99 ≤ 100 ms, CPU per "
        "probe ≤ 2× the blackbox exporter's, RSS ≤ 120 MB.",
        "",
        "At 3,000 instances our daemon no longer keeps every probe on time: it needs about 1.15"
        " cores and Python runs one thread at a time, so some instances wait up to twice the"
        " interval between probes and latency p99 grows to hundreds of ms. Beyond about 2,000"
        " instances at 10 s, run one daemon per group of services or lengthen the interval.",
        "",
        "Before the fixes these figures called for (a quick run, one window, before commit"
        " 3e781c6, against a blackbox run that started every probe at once): at 1,000 instances"
        " probe latency p99 was 519 ms, CPU 7.8 ms per probe (2.8× the exporter's), RSS 111 MB."
        " The causes: every probe started in the same second (fixed: a phase per probe,"
        " a4e2fff); urllib3 built an SSLContext and parsed the CA bundle for each connection,"
        " and each probe made two TLS handshakes (fixed: one shared context, one connection"
        " per probe, 3e781c6; `python -m bench.micro`, one thread: 5.0 → 3.8 → 2.7 ms CPU per"
        " probe). At 3,000 instances py-spy showed the controller thread rebuilding every"
        " instance's"
        " health and re-parsing the zone file for each service (fixed in 91a6b07).",
    ]
    return lines
