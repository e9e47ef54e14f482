"""One service's slow DNS write must not hold another, nor the controller loop.

1. `stuck_propagation`: two services on the same two Pebble CAs. `acme` goes through BIND,
   whose verify servers include a mute one (a UDP socket nobody reads), so after each write
   its propagation wait runs to `propagation_timeout` (30 s). `acme-file` goes through a zone
   file, with `fall` one higher, so it decides one interval later. The active CA is killed;
   measured: kill → the zone file holding the new target. Detection alone is about
   (fall + 1) x interval = 3 s here.
2. `ten_services`: ten services through Route 53 (moto) behind a proxy that holds each
   GetChange back 1 s (Route 53 is PENDING for seconds to a minute in production). The
   active CA is killed, all ten fail over at once. Measured from the daemon's sd_notify
   heartbeat (WATCHDOG_USEC=200ms: a loop that turns beats every 0.1 s): the longest gap
   between two WATCHDOG=1 during the failover, i.e. the controller loop's longest pause, and
   kill → the last of the ten written.

Runs against any commit of the daemon (it only uses the lab, the config and the CLI), so the
"before" figures come from the same script run on the older checkout.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from typing import Any

import yaml

from bench.stats import summary
from lab import Lab
from lab.bind import ZONE_TEXT
from lab.scenario import NAME, wait_for, write_config, zone_points_at
from lab.slowproxy import SlowProxy

A, B = "ca-a.example.test.", "ca-b.example.test."
CHECKS = {"interval": "1s", "timeout": "800ms", "rise": 2, "fall": 2}


def stuck_propagation(reps: int) -> dict[str, Any]:
    samples = [_stuck_once() for _ in range(reps)]
    return {"zone_file_flip_seconds": summary(samples), "samples": samples}


def _stuck_once() -> float:
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        bind = lab.bind()
        mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mute.bind(("127.0.0.1", 0))
        zone = lab.directory / "example.test.zone"
        zone.write_text(ZONE_TEXT)
        config = write_config(lab.directory / "config.yaml", lab, bind, [a, b], {"checks": CHECKS})
        document = yaml.safe_load(config.read_text())
        provider = document["providers"]["bind"]
        provider["verify_servers"] = [*bind.verify_servers, f"127.0.0.1:{mute.getsockname()[1]}"]
        provider["timeout"] = "1s"
        provider["propagation_timeout"] = "30s"
        document["providers"]["file"] = {
            "type": "zonefile",
            "path": str(zone),
            "zone": "example.test.",
        }
        second = {**document["services"]["acme"], "provider": "file"}
        second["checks"] = {**CHECKS, "fall": 3}
        document["services"]["acme-file"] = second
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        daemon = lab.daemon(config)
        wait_for(
            lambda: daemon.health()["services"]["acme-file"]["active"] == "ca-a", 30, "settled"
        )
        a.kill()
        killed = time.monotonic()
        wait_for(lambda: zone_points_at(zone, "ca-b"), 60, "the zone file on ca-b")
        mute.close()
        return time.monotonic() - killed


class Heartbeats:
    """Collects WATCHDOG=1 arrival times from a daemon's NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.name = f"dnsfailover-bench-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.05)
        self.beats: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "WATCHDOG=1" in message.split("\n"):
                self.beats.append(time.monotonic())

    def longest_gap(self, start: float, end: float) -> float:
        inside = [t for t in self.beats if start <= t <= end]
        edges = [start, *inside, end]
        return max(later - earlier for earlier, later in itertools.pairwise(edges))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def ten_services(reps: int) -> dict[str, Any]:
    runs = [_ten_once() for _ in range(reps)]
    pauses, lasts = [r[0] for r in runs], [r[1] for r in runs]
    return {
        "longest_heartbeat_gap_seconds": summary(pauses),
        "last_of_ten_written_seconds": summary(lasts),
        "samples": {"gaps": pauses, "last_written": lasts},
    }


def _ten_once() -> tuple[float, float]:
    with Lab() as lab:
        a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
        moto = lab.moto()
        client, zone_id = moto.zone_with_cname("example.test.", NAME, "ca-a.example.test.")
        names = [f"svc{i}.example.test." for i in range(10)]
        record = {"Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": A}]}
        changes = [{"Action": "CREATE", "ResourceRecordSet": {"Name": n, **record}} for n in names]
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
        slow = lab._own(SlowProxy(moto.endpoint_url, "/change/", delay=1.0))
        slow.start()
        credentials = moto.write_credentials(lab.directory / "aws")
        provider = {
            "type": "route53",
            "zone": "example.test.",
            "endpoint_url": slow.endpoint_url,
            "credentials_file": str(credentials),
            "poll_interval": "100ms",
            "propagation_timeout": "30s",
        }
        config = write_config(
            lab.directory / "config.yaml", lab, None, [a, b], {"checks": CHECKS}, provider=provider
        )
        document = yaml.safe_load(config.read_text())
        template = document["services"].pop("acme")
        for instance in template["instances"]:
            # ten public names the lab's certificates do not cover: this part measures the
            # controller loop, not the client's view (older commits have no such key)
            if os.environ.get("BENCH_OLDER") is None:
                instance["acme"]["as_client"] = False
        document["services"] = {f"svc{i}": {**template, "name": n} for i, n in enumerate(names)}
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        beats = Heartbeats()
        env = {"NOTIFY_SOCKET": "@" + beats.name, "WATCHDOG_USEC": "200000"}
        daemon = lab.daemon(config, env=env)

        def written() -> int:
            records = client.list_resource_record_sets(HostedZoneId=zone_id)
            found = records["ResourceRecordSets"]
            return sum(
                1 for r in found if r["Name"] in names and r["ResourceRecords"][0]["Value"] == B
            )

        wait_for(lambda: daemon.health()["services"]["svc9"]["active"] == "ca-a", 30, "settled")
        a.kill()
        killed = time.monotonic()
        wait_for(lambda: written() == 10, 120, "all ten written", step=0.05)
        last = time.monotonic()
        wait_for(
            lambda: sum(1 for e in daemon.audit() if e["event"] == "failover") >= 10,
            120,
            "all ten confirmed",
        )
        confirmed = time.monotonic()
        beats.close()
        return beats.longest_gap(killed, confirmed), last - killed


def run(quick: bool = False) -> dict[str, Any]:
    reps = 2 if quick else 5
    return {
        "settings": {"reps": reps, "checks": CHECKS, "commit": os.environ.get("BENCH_LABEL")},
        "stuck_propagation": stuck_propagation(reps),
        "ten_services": ten_services(reps),
    }


def report(results: dict[str, Any]) -> list[str]:
    stuck = results["stuck_propagation"]["zone_file_flip_seconds"]
    ten = results["ten_services"]
    gap, last = ten["longest_heartbeat_gap_seconds"], ten["last_of_ten_written_seconds"]
    previous = results.get("previous") or {}
    then = previous.get("results") or {}
    then_ten = then.get("ten_services") or {}
    olds = [
        (then.get("stuck_propagation") or {}).get("zone_file_flip_seconds"),
        then_ten.get("longest_heartbeat_gap_seconds"),
        then_ten.get("last_of_ten_written_seconds"),
    ]

    def cells(now: dict[str, float], old: dict[str, float] | None) -> str:
        cell = f"{now['median']:.2f} s ({now['p95']:.2f})"
        if previous:
            cell += " | " + (f"{old['median']:.2f} s ({old['p95']:.2f})" if old else "-")
        return cell

    lines = [
        f"{results['settings']['reps']} repetitions each; median (p95)"
        + (
            f"; next to the run this one replaced (commit `{previous['commit']}`,"
            f" {previous['date']})."
            if previous
            else "."
        ),
        "",
        "| measure | result |" + (" then |" if previous else ""),
        "|---|---|" + ("---|" if previous else ""),
        f"| service B (zone file) failover while A's propagation is stuck (detection ≈ 3 s) "
        f"| {cells(stuck, olds[0])} |",
        f"| ten services fail over at once (Route 53, GetChange 1 s): controller loop's longest "
        f"pause (heartbeat gap; 0.1 s when the loop turns freely) "
        f"| {cells(gap, olds[1])} |",
        f"| ... kill → the last of the ten written | {cells(last, olds[2])} |",
    ]
    before = results.get("before")
    if before:
        lines += ["", f"Before (commit {before['commit']}, same script): " + before["text"]]
    return lines


if __name__ == "__main__":  # for the older checkout, which has no part of this name
    import json
    import sys

    json.dump(run(quick="--quick" in sys.argv), sys.stdout, indent=1)
    print()
