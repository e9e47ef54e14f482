"""Several controllers (lab/coordination.py: three sites, 3-member etcd, two Pebbles, BIND).

Checks interval 1 s, timeout 800 ms, rise 2, fall 2; lease_ttl 2 s (renew deadline 1.33 s).
1. `takeover`: the active CA is killed (a) with one controller alone (no coordination, the
   baseline), (b) with three controllers, the leader alive, (c) with three, and the leader
   SIGKILLed at the same moment, (d) with three, the leader's site cut from BIND (nftables,
   its DNS path only) at the same moment: the leader hands over and the successor writes.
   Measured: kill → the secondary serving the other CA (for (d), written by another site).
   Target for (b): median ≤ (a)'s + 0.15 s; for (c): p99 ≤ p99 of (a) + lease_ttl + 1 s.
   (a) and (b) share one cluster, in alternating blocks of runs, so that both see the same
   load; (c) and (d) have one cluster each. A run starts when every site sees both CAs
   healthy; the CA comes back and the next run kills the other one, so that no run waits for
   a failback.
2. `fencing`: the leader is armed to freeze itself (SIGSTOP) between reading the fence and
   sending its UPDATE; the active CA is killed; once a successor leads and its failover is
   served, the old leader is thawed with its write in flight. Counted: stale writes accepted
   (BIND's serial moved, or the old leader audited a write). Target: 0.
3. `site_cut`: the leader's own site is cut off from the active CA (nftables) for three
   detection periods; the other two still reach it. Counted: flips. Target: 0.
4. `member_loss`: the etcd member the controllers use first is killed: the longest stretch in
   which no controller was allowed to write (health.json polled every 50 ms). Target: no
   interruption beyond a round.
5. `flap`: five minutes of the active CA frozen 5 s / thawed 5 s with three controllers:
   writes, real changes (freezes), A→B→A within 2 s, and the serial's delta.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import percentile, summary
from lab import Lab
from lab.coordination import A, B, Cluster, is_stopped
from lab.process import LabError
from lab.scenario import NAME, wait_for
from lab.sites import NETWORK

LEASE = 2.0
DETECTION = 2 * 1.0 + 0.8
HANDOVER = 2 * 1.0 + 2.0  # handover_after's default: 2 × the interval + the provider's timeout
BIND = f"{NETWORK}.1"  # the lab's BIND (primary and secondary) on the sites' bridge
BLOCK = 5  # runs of one shape before the shared cluster switches to the other
PARTIAL = Path(__file__).resolve().parent / "results" / "coordination.partial.json"


def _served_on_secondary(cluster: Cluster) -> set[str]:
    return cluster.bind.secondary.rrset(NAME, "CNAME")


def _healthy(daemon: Any) -> bool:
    """Both CAs healthy in the daemon's own view, and in its quorum's when it leads."""
    service = (daemon.health() or {}).get("services", {}).get("acme") or {}
    views = [service.get("instances") or {}, service.get("quorum") or {}]
    return len(views[0]) == 2 and all(
        i["state"] == "healthy" for view in views for i in view.values()
    )


def _ready(cluster: Cluster, coordinated: bool, dns: bool = False) -> None:
    """Settled: (coordinated) a fenced leader, every site reporting (`dns`: and reaching
    DNS), and every site sees both CAs healthy."""
    if coordinated:
        leader = cluster.wait_leader(timeout=30)
        cluster.wait_fenced(leader)
        for site in cluster.daemons:
            cluster.wait_reporting(site)
            if dns:
                wait_for(lambda s=site: cluster.coordination(s).get("dns", {}).get("reachable"),
                         HANDOVER + 10, f"{site} reaches DNS")  # fmt: skip
    for site, daemon in cluster.daemons.items():
        wait_for(lambda d=daemon: _healthy(d), 20, f"both CAs healthy at {site}")


def _start(cluster: Cluster, coordinated: bool) -> None:
    if coordinated:
        cluster.start()
    else:
        cluster.start("east", coordinated=False)


def _stop(cluster: Cluster) -> None:
    for daemon in cluster.daemons.values():
        daemon.stop()
    cluster.daemons.clear()


def _takeover_once(cluster: Cluster, shape: str) -> tuple[float, str | None]:
    """Kill the active CA (with the shape's fault); seconds until the secondary serves the
    other CA, and the site that wrote it (None: one controller alone)."""
    coordinated = shape != "alone"
    _ready(cluster, coordinated, dns=shape == "dns_cut")
    pebbles = {A: cluster.a, B: cluster.b}
    [active] = _served_on_secondary(cluster)
    other = B if active == A else A
    leader = cluster.leader() if coordinated else None
    before = {site: len(cluster.writes(site)) for site in cluster.daemons}
    if shape == "dns_cut" and leader is not None:
        cluster.sites[leader].cut([BIND])  # its DNS path only: etcd and the CAs still answer
    killed = time.monotonic()
    pebbles[active].kill()
    if shape == "leader_killed" and leader is not None:
        cluster.daemons[leader].kill()
    wait_for(lambda: _served_on_secondary(cluster) == {other}, 60, "the other CA served")
    took = time.monotonic() - killed
    writer = None
    if coordinated:

        def wrote() -> list[str]:
            return [s for s, d in cluster.daemons.items()
                    if d.running() and len(cluster.writes(s)) > before[s]]  # fmt: skip

        wait_for(lambda: bool(wrote()), 10, "the write audited")
        [writer] = wrote()
    pebbles[active].start()
    if shape == "leader_killed" and leader is not None:
        cluster.restart(leader)
    if shape == "dns_cut" and leader is not None:
        cluster.sites[leader].heal()
        if writer == leader:
            raise LabError(f"the leader cut from DNS ({leader}) wrote the failover")
    return took, writer


def takeover(shape: str, reps: int) -> dict[str, Any]:
    samples, writers = [], []
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        _start(cluster, shape != "alone")
        for _ in range(reps):
            took, writer = _takeover_once(cluster, shape)
            samples.append(took)
            writers.append(writer)
    return {"samples": samples, "writers": writers}


def takeover_pair(reps: int) -> dict[str, dict[str, Any]]:
    """One controller alone and three with a live leader, on one cluster, in alternating
    blocks of BLOCK runs: the two are compared under the same load."""
    found: dict[str, dict[str, Any]] = {s: {"samples": [], "writers": []}
                                        for s in ("alone", "leader_alive")}  # fmt: skip
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        while any(len(f["samples"]) < reps for f in found.values()):
            for shape, f in found.items():
                runs = min(BLOCK, reps - len(f["samples"]))
                if not runs:
                    continue
                _start(cluster, shape != "alone")
                for _ in range(runs):
                    took, writer = _takeover_once(cluster, shape)
                    f["samples"].append(took)
                    f["writers"].append(writer)
                _stop(cluster)
    return found


def _armed(cluster: Cluster, site: str) -> Path:
    return cluster.directory / f"armed-{site}"


def fencing(reps: int) -> dict[str, Any]:
    takeovers: list[float] = []
    stale: list[dict[str, Any]] = []  # what each stale write was
    errors: list[str] = []  # runs the lab could not complete (none counted as clean)
    landed: list[str] = []  # runs where the old leader's first attempt landed while it led
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        for site in cluster.sites:
            env = {"DNSFAILOVER_CRASHPOINT": "fenced_write:stop",
                   "DNSFAILOVER_CRASHPOINT_IF": str(_armed(cluster, site))}  # fmt: skip
            cluster.restart(site, env=env)
        pebbles = {A: cluster.a, B: cluster.b}
        for _ in range(reps):
            try:
                _fence_once(cluster, pebbles, takeovers, stale, landed)
            except LabError as e:
                errors.append(str(e))
            finally:  # whatever happened: nobody frozen, both CAs up, no site armed
                for site, daemon in cluster.daemons.items():
                    _armed(cluster, site).unlink(missing_ok=True)
                    daemon.thaw()
                for pebble in pebbles.values():
                    if not pebble.running():
                        pebble.start()
    return {
        "runs": reps,
        "completed": reps - len(errors),
        "stale_writes_accepted": len(stale),
        "stale": stale,
        "errors": errors,
        "landed_before_deposed": len(landed),
        "kill_to_successor_served": summary(takeovers),
    }


def _writing(daemon: Any) -> Any:
    return ((daemon.health() or {}).get("services", {}).get("acme") or {}).get("writing")


def _fence_once(
    cluster: Cluster,
    pebbles: dict[str, Any],
    takeovers: list[float],
    stale: list[dict[str, Any]],
    landed: list[str],
) -> None:
    _ready(cluster, True)
    leader = cluster.leader()
    assert leader is not None
    old = cluster.daemons[leader]
    refused_before = sum(e.get("event") == "fenced" for e in old.audit())
    before = {site: len(cluster.writes(site)) for site in cluster.daemons}
    [active] = cluster.served()
    other = B if active == A else A
    _armed(cluster, leader).touch()
    killed = time.monotonic()
    pebbles[active].kill()
    is_stopped(old.pid)
    old.frozen = True
    _armed(cluster, leader).unlink()
    successor = cluster.wait_leader(other_than=leader, timeout=30)
    cluster.wait_fenced(successor)
    wait_for(lambda: cluster.served() == {other}, 30, "the name on the other CA")
    takeovers.append(time.monotonic() - killed)
    # Quiet before anything is counted: the successor has no write in flight (its audit comes
    # after the propagation wait).
    wait_for(lambda: _writing(cluster.daemons[successor]) is None, 30, "the successor quiet")
    if len(cluster.writes(successor)) == before[successor]:
        # The successor found the name moved already: the old leader's first attempt landed
        # while it still led (its reply was late, e.g. the SOA read after the UPDATE timed
        # out) and it froze before its retry. That retry is the write in flight now.
        landed.append(leader)
    serial = cluster.bind.primary.soa_serial()
    old.resume()
    wait_for(lambda: sum(e.get("event") == "fenced" for e in old.audit()) > refused_before, 30,
             "the old leader's write refused")  # fmt: skip
    after = cluster.bind.primary.soa_serial()
    if after != serial or len(cluster.writes(leader)) > before[leader]:
        stale.append({"leader": leader, "serial": [serial, after],
                      "writes": cluster.writes(leader)[before[leader]:]})  # fmt: skip


def _state_of(daemon: Any, name: str) -> str:
    return str((daemon.health() or {})["services"]["acme"]["instances"][name]["state"])


def site_cut(reps: int) -> dict[str, Any]:
    flips = 0
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        cluster.start()
        _ready(cluster, True)
        leader = cluster.leader()
        assert leader is not None
        own = cluster.daemons[leader]
        pebbles = {A: cluster.a, B: cluster.b}
        writes = sum(len(cluster.writes(s)) for s in cluster.daemons)
        serial = cluster.bind.primary.soa_serial()
        for _ in range(reps):
            [active] = cluster.served()
            name = "ca-a" if active == A else "ca-b"
            cluster.sites[leader].cut([pebbles[active].address])
            wait_for(lambda n=name: _state_of(own, n) == "unhealthy", 15,
                     "the leader's site sees the CA down")  # fmt: skip
            seen = (own.health() or {})["updated"]
            wait_for(lambda s=seen: (own.health() or {})["updated"] > s + 3 * DETECTION, 30,
                     "three detection periods")  # fmt: skip
            cluster.sites[leader].heal()
            wait_for(lambda n=name: _state_of(own, n) == "healthy", 15,
                     "the leader's site sees the CA again")  # fmt: skip
        flips = sum(len(cluster.writes(s)) for s in cluster.daemons) - writes
        moved = (cluster.bind.primary.soa_serial() or 0) - (serial or 0)
    return {"runs": reps, "flips": flips, "serial_delta": moved}


def member_loss(reps: int) -> dict[str, Any]:
    gaps = []
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        cluster.start()
        for _ in range(reps):
            _ready(cluster, True)
            first = cluster.etcd.members[0]
            end = time.monotonic() + 10
            longest, since = 0.0, None
            first.kill()
            while time.monotonic() < end:
                writing = cluster.leader() is not None
                now = time.monotonic()
                if writing:
                    since = None
                else:
                    since = since or now
                    longest = max(longest, now - since)
                time.sleep(0.05)
            gaps.append(longest)
            cluster.etcd.restart(first)
    return {"runs": reps, "longest_no_writer_seconds": summary(gaps)}


def flap(seconds: float) -> dict[str, Any]:
    with Lab() as lab:
        cluster = Cluster(lab, lab.directory / "cluster")
        cluster.start()
        _ready(cluster, True)
        serial = cluster.bind.primary.soa_serial() or 0
        pebbles = {A: cluster.a, B: cluster.b}
        freezes = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            [active] = cluster.served()
            pebbles[active].freeze()
            freezes += 1
            time.sleep(5)
            pebbles[active].resume()
            time.sleep(5)

        def applied() -> list[tuple[float, str, str, str]]:
            return sorted((e["time"], e["from"], e["to"], e["site"]) for s in cluster.daemons
                          for e in cluster.writes(s))  # fmt: skip

        wait_for(lambda: (cluster.bind.primary.soa_serial() or 0) - serial == len(applied()), 15,
                 "the writes audited")  # fmt: skip
        writes = applied()
        ping_pong = sum(
            1 for (t1, f1, _, _), (t2, _, to2, _) in itertools.pairwise(writes)
            if to2 == f1 and t2 - t1 < 2
        )  # fmt: skip
        return {
            "seconds": seconds, "freezes": freezes, "writes": len(writes),
            "writers": sorted({w[3] for w in writes}), "ping_pong": ping_pong,
            "serial_delta": (cluster.bind.primary.soa_serial() or 0) - serial,
        }  # fmt: skip


def _section(results: dict[str, Any], name: str, measure: Callable[[], Any]) -> None:
    """One section; a lab failure is recorded (and the other sections still run). The
    results so far are kept in results/coordination.partial.json."""
    try:
        results[name] = measure()
    except LabError as e:
        results[name] = {"error": str(e)}
    PARTIAL.write_text(json.dumps(results, indent=1) + "\n")


def run(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 20
    many = 3 if quick else 50
    soak = float(os.environ.get("DNSFAILOVER_DRILL_SECONDS", "60" if quick else "300"))
    results: dict[str, Any] = {
        "settings": {"reps": reps, "lease_ttl": LEASE, "checks": "1s / 800ms / rise 2 / fall 2"}
    }
    sections = os.environ.get("BENCH_SECTIONS", "takeover fencing site_cut member_loss flap")

    def takeovers() -> dict[str, Any]:
        runs = takeover_pair(reps)
        for shape in ("leader_killed", "dns_cut"):
            runs[shape] = takeover(shape, reps)
        return {
            shape: {**summary(r["samples"]), "p99": percentile(r["samples"], 99), **r}
            for shape, r in runs.items()
        }

    measures: dict[str, Callable[[], Any]] = {
        "takeover": takeovers,
        "fencing": lambda: fencing(many),
        "site_cut": lambda: site_cut(many),
        "member_loss": lambda: member_loss(3 if quick else 5),
        "flap": lambda: flap(soak),
    }
    for name in sections.split():
        _section(results, name, measures[name])
    _carry(results, [name for name in measures if name not in sections.split()])
    return results


def _carry(results: dict[str, Any], names: list[str]) -> None:
    """Sections not run this time keep the figures of the run before, marked as such."""
    path = PARTIAL.with_name("coordination.json")
    if not names or not path.exists():
        return
    document = json.loads(path.read_text())
    before = document["results"]
    carried = before.get("carried") or {}
    for name in names:
        if name in before:
            results[name] = before[name]
            results.setdefault("carried", {})[name] = (
                carried.get(name) or f"commit `{document['commit']}`, {document['date']}"
            )
    if "fencing" in names and before.get("fencing_commit"):
        results["fencing_commit"] = before["fencing_commit"]


def report(results: dict[str, Any]) -> list[str]:
    failed = [f"- {name}: {v['error']}" for name, v in results.items()
              if isinstance(v, dict) and "error" in v]  # fmt: skip
    if failed:
        return ["Sections that failed (the lab error):", "", *failed]
    t = results["takeover"]
    target = t["alone"]["p99"] + LEASE + 1
    killed = t["leader_killed"]
    met = "met" if killed["p99"] <= target else "MISSED"
    alive_target = t["alone"]["median"] + 0.15
    alive_met = "met" if t["leader_alive"]["median"] <= alive_target else "MISSED"
    f, c, m, fl = results["fencing"], results["site_cut"], results["member_loss"], results["flap"]
    gap = m["longest_no_writer_seconds"]
    served = f["kill_to_successor_served"]
    shapes = [
        ("alone", "one controller, no coordination", "baseline"),
        (
            "leader_alive",
            "three controllers, leader alive (same cluster as the baseline, alternating)",
            f"median ≤ {alive_target:.2f} (baseline + 0.15 s): {alive_met}",
        ),
        (
            "leader_killed",
            "three controllers, leader SIGKILLed too",
            f"p99 ≤ {target:.2f} (baseline p99 + lease_ttl + 1 s): {met}",
        ),
    ]
    if "dns_cut" in t:
        cut = t["dns_cut"]
        others = sum(1 for w in cut.get("writers", []) if w is not None)
        shapes.append(
            (
                "dns_cut",
                "three controllers, the leader's site cut from BIND too (the successor writes)",
                f"- (written by another site in {others} of {cut['n']})",
            )
        )
    return [
        f"{results['settings']['reps']} runs per takeover shape; checks "
        f"{results['settings']['checks']}, lease_ttl {LEASE:.0f} s; seconds, median / p99 / max.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        *(
            f"| CA killed → secondary serves the other CA: {label} "
            f"| {t[k]['median']:.2f} / {t[k]['p99']:.2f} / {t[k]['max']:.2f} | {goal} |"
            for k, label, goal in shapes
        ),
        "| leader frozen past its lease, thawed with its write in flight: stale writes accepted "
        + (f"(commit {results['fencing_commit']}) " if results.get("fencing_commit") else "")
        + f"| {f['stale_writes_accepted']} of {f['completed']} runs"
        + (f" ({len(f['errors'])} runs the lab could not complete)" if f["errors"] else "")
        + (
            f"; in {f['landed_before_deposed']} of them the old leader's first attempt had landed "
            "while it still led, and its retry was the write refused"
            if f.get("landed_before_deposed")
            else ""
        )
        + " | 0 |",
        f"| ... kill → the successor's failover served | {served['median']:.2f}"
        f" / p95 {served['p95']:.2f} | - |",
        f"| leader's site cut off from the active CA (3 detection periods each): flips "
        f"| {c['flips']} of {c['runs']} runs (serial moved {c['serial_delta']}) | 0 |",
        f"| etcd member in use killed: longest time no controller may write "
        f"| {gap['median']:.2f} / max {gap['max']:.2f} ({m['runs']} runs) | ≤ one round (0.44 s) |",
        f"| active CA frozen 5 s / thawed 5 s for {fl['seconds']:.0f} s: writes / real changes "
        f"| {fl['writes']} / {fl['freezes']}, writers {', '.join(fl['writers'])}, ping-pong "
        f"{fl['ping_pong']}, serial delta {fl['serial_delta']} | writes = changes, 0 ping-pong |",
        *_notes(results),
    ]


def _notes(results: dict[str, Any]) -> list[str]:
    """The takeover figures this run replaced, and the sections carried from an earlier run."""
    lines = []
    previous = (results.get("previous") or {}).get("results", {}).get("takeover")
    if previous:
        then = "; ".join(
            f"{k} {v['median']:.2f} / {v['p99']:.2f}" for k, v in previous.items() if "median" in v
        )
        lines += [
            "",
            f"Takeover before (commit `{results['previous']['commit']}`, "
            f"{results['previous']['date']}; median / p99): {then}. That run measured each shape "
            "in a cluster of its own, one after the other, and started a coordinated run without "
            "waiting for the CA restarted by the run before to be healthy again.",
        ]
    carried = results.get("carried") or {}
    if carried:
        lines += [
            "",
            "Not re-run here, figures of an earlier run: "
            + "; ".join(f"{name} ({where})" for name, where in carried.items())
            + ".",
        ]
    return lines
