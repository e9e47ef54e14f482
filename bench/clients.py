"""What ACME clients see across a flip: lego issuing through the public name, in a loop.

The lab of `lab/clients.py`: two Pebbles on one port at 127.0.0.2 and 127.0.0.3, BIND, unbound
as the clients' caching resolver, the daemon with ttl 2 s (interval 1 s, timeout 800 ms,
rise 2, fall 2). For each repetition the active CA is killed, or frozen (SIGSTOP); then lego
issues again and again (a fresh account each time: the Pebbles share no database) until one
succeeds. The client-visible outage is outage start → the end of the first successful
issuance, and it is compared with the convergence budget (detection + write + propagation +
the client TTL) plus lego's own time for one issuance, measured before the outage.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from bench.stats import summary
from lab import Lab
from lab.clients import ClientScene
from lab.scenario import wait_for

SHAPES = ("killed", "frozen")


def _cli(scene: ClientScene, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dnsfailover", *args, "-c", str(scene.config)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"dnsfailover {' '.join(args)}: exit {done.returncode}: {done.stderr}")


def _active(scene: ClientScene) -> str | None:
    return scene.daemon.health()["services"]["acme"]["active"]  # type: ignore[no-any-return]


def _back_on_a(scene: ClientScene) -> None:
    """Both CAs up, the name on ca-a, every resolver past the old answer's TTL."""
    if not scene.a.running():
        scene.a.start()
    wait_for(lambda: scene.daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"]
             == "healthy", 30, "ca-a healthy")  # fmt: skip
    if _active(scene) != "ca-a":
        _cli(scene, "failover", "acme", "--to", "ca-a")
        _cli(scene, "release", "acme")
    wait_for(lambda: _active(scene) == "ca-a", 30, "the name on ca-a")
    time.sleep(2.5)  # the record's TTL (2 s): the resolver's cached answer expires


def _one(scene: ClientScene, shape: str) -> dict[str, float]:
    _back_on_a(scene)
    baseline = scene.issue()
    if not baseline.ok:
        raise RuntimeError(f"lego failed before the outage: {baseline.output}")
    started = time.monotonic()
    if shape == "killed":
        scene.a.kill()
    else:
        scene.a.freeze()
    try:
        outage = scene.issue_until_it_works(deadline=120)
    finally:
        if shape == "frozen":
            scene.a.resume()
    assert time.monotonic() - started >= outage
    return {"outage": outage, "lego_seconds": baseline.seconds}


def run(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 20
    results: dict[str, Any] = {"settings": {"reps": reps, "ttl": 2, "client": "lego 4.9"}}
    with Lab() as lab:
        scene = ClientScene.build(lab, lab.directory)
        for shape in SHAPES:
            samples = [_one(scene, shape) for _ in range(reps)]
            results[shape] = {k: summary([s[k] for s in samples]) for k in samples[0]}
            results[shape]["samples"] = samples
        entries = scene.daemon.audit()
    writes = [e["write_seconds"] for e in entries if e.get("outcome") == "applied"]
    props = [e["propagation_seconds"] for e in entries if e.get("outcome") == "applied"]
    # detection: fall 2 x interval 1 s + timeout 0.8 s; client TTL 2 s
    results["budget"] = {
        "detection": 2 * 1.0 + 0.8,
        "write_p95": summary(writes)["p95"],
        "propagation_p95": summary(props)["p95"],
        "client_ttl": 2.0,
    }
    return results


def report(results: dict[str, Any]) -> list[str]:
    budget = results["budget"]
    total = sum(budget.values())
    lines = [
        f"{results['settings']['reps']} repetitions per shape, {results['settings']['client']}, "
        f"record TTL {results['settings']['ttl']} s; median / p95 in seconds.",
        "",
        f"Budget: detection {budget['detection']:.1f} + write {budget['write_p95']:.3f} + "
        f"propagation {budget['propagation_p95']:.3f} + client TTL {budget['client_ttl']:.0f} "
        f"= {total:.2f} s, plus one issuance.",
        "",
        "| shape | client-visible outage | one lego issuance | budget + one issuance |",
        "|---|---|---|---|",
    ]
    for shape in SHAPES:
        r = results[shape]
        o, one = r["outage"], r["lego_seconds"]
        lines.append(
            f"| {shape} | {o['median']:.2f} / {o['p95']:.2f} | {one['median']:.2f} / "
            f"{one['p95']:.2f} | {total + one['median']:.2f} |"
        )
    return [
        *lines,
        "",
        "The budget is the worst case: a killed CA refuses connections at once, so `fall`",
        "failures usually take less than fall x interval. A frozen CA hangs the client too:",
        "an issuance started during the freeze waits for lego's own HTTP timeout (5 s here)",
        "before the next one, through the new answer, succeeds; that client-side wait, not",
        "the name's move, is most of the outage. Production clients (Go's, certbot's) wait",
        "longer by default: 30 s and more.",
    ]
