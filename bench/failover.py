"""Failover time on the lab: two Pebble CAs, BIND primary + secondary, RFC 2136.

interval 1 s, fall 2, timeout 1 s. Outage shapes: the active CA killed (connection refused),
frozen with SIGSTOP (a hang), and answering 500 serverInternal (a fault proxy in front of it).
For each repetition: outage start → the probe result that made the instance unhealthy
(detection, as the daemon received it) → compare-and-swap write acknowledged → the secondary
serving the new target (polled every 5 ms from here). Also, for the "killed" shape, the
zone-file provider (named-checkzone on the temporary file, rename, a reload command; "serving"
means the file on disk holds the new record, as no name server reads it here) and moto's
Route 53 (write + INSYNC poll every 100 ms; "serving" means list_resource_record_sets returns
it; moto reports INSYNC at once, so this measures our side, not Route 53's propagation).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.exception
import dns.zone

from bench.stats import summary
from lab import Lab
from lab.bind import ZONE_TEXT
from lab.proxy import FaultProxy
from lab.scenario import NAME, DaemonProcess, wait_for, write_config

A, B = "ca-a.example.test.", "ca-b.example.test."
FAST = {
    "checks": {"interval": "1s", "timeout": "1s", "rise": 2, "fall": 2},
    "hold_down": "1s",
    "max_flips_per_hour": 10000,
}


def _cli(config: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dnsfailover", *args, "-c", str(config)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dnsfailover {' '.join(args)}: exit {done.returncode}: {done.stderr}")


def _entry_after(daemon: DaemonProcess, since: float) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for entry in daemon.audit():
            if entry["event"] == "failover" and (entry.get("trigger_at") or 0) >= since:
                return entry
        return None

    wait_for(lambda: found() is not None, 10, "the audit entry")
    entry = found()
    assert entry is not None
    return entry


def _measure(
    daemon: DaemonProcess,
    config: Path,
    serves: Callable[[str], bool],
    inject: Callable[[], None],
    restore: Callable[[], None],
    reps: int,
    before_change: Callable[[], None] = lambda: None,
) -> list[dict[str, float]]:
    samples = []
    for _ in range(reps):
        restore()
        wait_for(
            lambda: daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"] == "healthy",
            30,
            "ca-a healthy",
        )
        if not serves(A):
            before_change()
            _cli(config, "failover", "acme", "--to", "ca-a")
            _cli(config, "release", "acme")
        wait_for(lambda: serves(A), 10, "the name back on ca-a")
        before_change()
        time.sleep(1.5 + random.random())  # past hold-down, at a random probe phase
        start = time.time()
        inject()
        wait_for(lambda: serves(B), 30, "the name on ca-b", step=0.005)
        served = time.time()
        entry = _entry_after(daemon, start)
        samples.append(
            {
                "detection": entry["trigger_at"] - start,
                "decision_to_write_ack": entry["write_acked_at"] - entry["trigger_at"],
                "overhead": served - entry["trigger_at"],
                "total": served - start,
                "write": entry["write_seconds"],
                "propagation": entry.get("propagation_seconds") or 0.0,
            }
        )
    return samples


def _summaries(samples: list[dict[str, float]]) -> dict[str, Any]:
    keys = samples[0].keys() if samples else []
    return {k: summary([s[k] for s in samples]) for k in keys} | {"samples": samples}


def bind_shapes(reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        bind = lab.bind()
        config = write_config(lab.directory / "config.yaml", lab, bind, [a, b], FAST)
        daemon = lab.daemon(config)

        def serves(target: str) -> bool:
            return bind.secondary.rrset(NAME, "CNAME") == {target}

        def restart() -> None:
            if not a.running():
                a.start()

        results["killed"] = _summaries(_measure(daemon, config, serves, a.kill, restart, reps))

        def thaw() -> None:
            a.thaw()
            restart()

        results["frozen"] = _summaries(_measure(daemon, config, serves, a.freeze, thaw, reps))
        daemon.stop()
        thaw()

        proxy = lab._own(FaultProxy(a.base_url, lab.tls))
        proxy.start()
        proxied = lab.directory / "proxied.yaml"
        write_config(proxied, lab, bind, [a, b], FAST)
        proxied.write_text(proxied.read_text().replace(a.directory_url, proxy.directory_url))
        daemon = lab.daemon(proxied)

        def fail() -> None:
            proxy.fail = True

        def heal() -> None:
            proxy.fail = False

        results["500"] = _summaries(_measure(daemon, proxied, serves, fail, heal, reps))
    return results


def zonefile_shape(reps: int) -> dict[str, Any]:
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        zone = lab.directory / "example.test.zone"
        zone.write_text(ZONE_TEXT)
        provider = {
            "type": "zonefile",
            "path": str(zone),
            "zone": "example.test.",
            "check_command": ["named-checkzone", "example.test.", "{path}"],
            "reload_command": ["true"],
        }
        config = write_config(
            lab.directory / "config.yaml", lab, None, [a, b], FAST, provider=provider
        )
        daemon = lab.daemon(config)

        def serves(target: str) -> bool:
            try:
                parsed = dns.zone.from_file(str(zone), origin="example.test.", relativize=False)
            except dns.exception.DNSException:
                return False  # between writes: the provider renames a whole file into place
            rdataset = parsed.get_rdataset(NAME, "CNAME")
            return rdataset is not None and {rd.to_text() for rd in rdataset} == {target}

        def restart() -> None:
            if not a.running():
                a.start()

        return _summaries(_measure(daemon, config, serves, a.kill, restart, reps))


def route53_shape(reps: int) -> dict[str, Any]:
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        moto = lab.moto()
        client, zone_id = moto.zone_with_cname("example.test.", NAME, A)
        credentials = moto.write_credentials(lab.directory / "aws")
        provider = {
            "type": "route53",
            "zone": "example.test.",
            "endpoint_url": moto.endpoint_url,
            "credentials_file": str(credentials),
            "poll_interval": "100ms",
        }
        config = write_config(
            lab.directory / "config.yaml", lab, None, [a, b], FAST, provider=provider
        )
        daemon = lab.daemon(config)

        def serves(target: str) -> bool:
            records = client.list_resource_record_sets(
                HostedZoneId=zone_id, StartRecordName=NAME, StartRecordType="CNAME", MaxItems="1"
            )["ResourceRecordSets"]
            return bool(records) and records[0]["ResourceRecords"][0]["Value"] == target

        def restart() -> None:
            if not a.running():
                a.start()

        return _summaries(
            _measure(daemon, config, serves, a.kill, restart, reps, moto.forget_change_history)
        )


def run(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 20
    return {
        "rfc2136": bind_shapes(reps),
        "zonefile": {"killed": zonefile_shape(reps)},
        "route53_moto": {"killed": route53_shape(reps)},
        "settings": {"interval": 1.0, "fall": 2, "timeout": 1.0, "reps": reps},
    }


TARGETS = {  # seconds; interval 1, fall 2, timeout 1
    "overhead_median": 0.100,
    "overhead_p95": 0.250,
    "killed_total_median": 2 * 1.0 + 0.3,
    "frozen_total_median": 2 * 1.0 + 1.0 + 0.3,
}


def _ms(value: float) -> str:
    return f"{value * 1000:.0f}" if value >= 0.0095 else f"{value * 1000:.1f}"


# The stages of one failover, each from per-repetition samples (seconds).
STAGES: dict[str, Callable[[dict[str, float]], float]] = {
    "detection": lambda s: s["detection"],  # outage start → the deciding probe result
    "decision": lambda s: s["decision_to_write_ack"] - s["write"],  # queue, DNS read, decide
    "write": lambda s: s["write"],  # the compare-and-swap write, until acknowledged
    "serving": lambda s: s["overhead"] - s["decision_to_write_ack"],  # ack → secondary serves
    "overhead": lambda s: s["overhead"],  # the deciding result → secondary serves
    "total": lambda s: s["total"],
}


def report(results: dict[str, Any]) -> list[str]:
    lines = [
        "Each cell: median / p95 in ms over the repetitions. detection: outage start → the"
        " probe result that made the instance unhealthy; decision: that result → the write"
        " starts (queue, DNS read, policy, state saved); write: compare-and-swap until"
        " acknowledged; serving: acknowledged → the secondary (zone file on disk, Route 53"
        " list) serves it; overhead = decision + write + serving; total = outage → served.",
        "",
        "| provider | shape | n | " + " | ".join(STAGES) + " | target |",
        "|---|---|---|" + "---|" * len(STAGES) + "---|",
    ]
    for provider in ("rfc2136", "zonefile", "route53_moto"):
        for shape, r in results.get(provider, {}).items():
            total_target = TARGETS.get(f"{shape}_total_median")
            verdicts = [
                r["overhead"]["median"] <= TARGETS["overhead_median"],
                r["overhead"]["p95"] <= TARGETS["overhead_p95"],
            ]
            if total_target is not None:
                verdicts.append(r["total"]["median"] <= total_target)
            target = "met" if all(verdicts) else "**missed**"
            cells = []
            for stage in STAGES.values():
                values = summary([stage(sample) for sample in r["samples"]])
                cells.append(f"{_ms(values['median'])} / {_ms(values['p95'])}")
            row = [provider, shape, str(r["total"]["n"]), *cells, target]
            lines.append("| " + " | ".join(row) + " |")
    lines += _previous(results)
    lines += _same_time(results)
    lines += [
        "",
        "Targets: overhead median ≤ 100 ms and p95 ≤ 250 ms; total median for killed ≤ 2.3 s"
        " (fall × interval + 0.3 s), for frozen ≤ 3.3 s (+ timeout). The 500 shape has no"
        " total target; it is detected like a killed CA. Detection is below fall × interval"
        " because the outage starts at a random point of the probe interval: the first"
        " failing probe comes 0-1 s after it.",
        "",
        "Before commit fde18fc the frozen shape missed its target (median 3,325 ms, p95 3,922):"
        " with timeout = interval a hung probe ends just as its next run is due, and the"
        " scheduler dropped that run, so the second failure came one interval late.",
    ]
    return lines


def _previous(results: dict[str, Any]) -> list[str]:
    """The figures this run replaced, next to its own (median / p95, ms)."""
    previous = results.get("previous")
    if not previous:
        return []
    lines = [
        "",
        f"Next to the run this one replaced (commit `{previous['commit']}`, {previous['date']}),"
        " median / p95 in ms:",
        "",
        "| provider | shape | overhead then | overhead now | total then | total now |",
        "|---|---|---|---|---|---|",
    ]
    for provider in ("rfc2136", "zonefile", "route53_moto"):
        for shape, r in results.get(provider, {}).items():
            then = previous["results"].get(provider, {}).get(shape)
            if then is None:
                continue
            cells = [
                f"{_ms(x[k]['median'])} / {_ms(x[k]['p95'])}"
                for k in ("overhead", "total")
                for x in (then, r)
            ]
            lines.append(f"| {provider} | {shape} | " + " | ".join(cells) + " |")
    return lines


def _same_time(results: dict[str, Any]) -> list[str]:
    """Runs of rfc2136/killed, one commit after the other in one window (added by hand from
    /tmp scripts that reuse `_measure`), when the load made the previous run no yardstick."""
    runs = results.get("same_time")
    if not runs:
        return []
    lines = [
        "",
        "rfc2136 / killed, the commit before the rebuild and the one measured, in one window"
        " (10 runs each, in the order shown; median / p95 in ms):",
        "",
        "| order | commit | load at start / end | decision → ack | overhead | total |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        cells = [
            f"{_ms(r[k]['median'])} / {_ms(r[k]['p95'])}"
            for k in ("decision_to_write_ack", "overhead", "total")
        ]
        load = f"{r['load'][0]:.1f} / {r['load'][1]:.1f}"
        lines.append(f"| {i} | `{r['commit']}` | {load} | " + " | ".join(cells) + " |")
    if results.get("same_time_text"):
        lines += ["", results["same_time_text"]]
    return lines
