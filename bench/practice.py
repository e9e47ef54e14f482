"""Practice runs as ACME clients see them, next to an unplanned failover in the same lab.

The lab of `lab/clients.py`: two Pebbles on one port at 127.0.0.2 and 127.0.0.3, BIND primary
and secondary, unbound as the clients' caching resolver, the daemon with ttl 2 s (interval 1 s,
timeout 800 ms, rise 2, fall 2; flips verified through unbound). For each practice run: both
instances healthy and the name on ca-a, then `dnsfailover drill acme --to ca-b --for 8s
--reason bench --wait` (exit 0 expected) while lego issues through unbound and the public name,
one issuance after another (a fresh account each time: the Pebbles share no database), from
before the run until one that started after its end has succeeded. Each issuance is timed and
the certificate's issuer read, so the figures say the clients did move to ca-b and back.

Per switch: failed issuances (the go switch's are those that started before the midpoint
between go.served and back.decided), the longest time between two successful issuances (end to
end) over [decided, max(verified, served + TTL)], and from the run's `practice_ended` timeline
decided → served everywhere and decided → verified as a client; served everywhere is also
polled from outside (both BIND servers, every 5 ms). Then the unplanned failover in the same
lab, the same loop running: the active CA killed, kill → served everywhere (polled the same
way), and from its audit entries the deciding probe result (`trigger_at`) → served and
→ `client_verified`.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from bench.clients import _back_on_a
from bench.failover import _entry_after
from bench.stats import summary
from lab import Lab
from lab.clients import DOMAIN, ClientScene
from lab.pebble import Pebble
from lab.scenario import NAME, wait_for

A, B = "ca-a.example.test.", "ca-b.example.test."
TTL = 2.0
DURATION = 8  # seconds on ca-b: room for a few issuances between the switches
LEGS = ("go", "back")


@dataclass(frozen=True)
class Attempt:
    started: float  # wall clock, as the audit's timestamps
    ended: float
    ok: bool
    issuer: str  # the certificate's issuer CN ("" when it failed)
    output: str  # what lego printed last, when it failed or was slow

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def slow(self) -> bool:
        return self.ok and self.seconds > SLOW

    def validation_wait(self) -> int | None:
        """Seconds lego waited for the challenge to turn valid, from its own log lines (to
        the second): 5 or more when the answer to its challenge POST still said pending and
        lego polled again after its default Retry-After of 5 s."""
        tried, validated = (_logged_at(self.output, line) for line in VALIDATION)
        return None if tried is None or validated is None else (validated - tried) % 86400


SLOW = 3.0  # seconds: an issuance takes 0.2-0.8 s, or 5 s more when lego waits to re-poll
VALIDATION = ("Trying to solve HTTP-01", "The server validated our request")


def _logged_at(output: str, line: str) -> int | None:
    """The second of the day lego logged `line` at (its log's HH:MM:SS)."""
    found = re.search(rf"(\d\d):(\d\d):(\d\d) [^\n]*{re.escape(line)}", output)
    if found is None:
        return None
    hours, minutes, seconds = (int(x) for x in found.groups())
    return 3600 * hours + 60 * minutes + seconds


class ClientLoop:
    """lego through unbound, one issuance after another on a thread of its own, until one
    that started after `finish(until)`'s moment has succeeded (or `deadline` passes)."""

    def __init__(self, scene: ClientScene, deadline: float = 180.0) -> None:
        self.scene = scene
        self.attempts: list[Attempt] = []
        self._until: float | None = None
        self._deadline = time.monotonic() + deadline
        self._thread = threading.Thread(target=self._run, name="lego-loop", daemon=True)

    def start(self) -> ClientLoop:
        """Once 1-4 issuances (at random) have succeeded: a random phase of the resolver's
        cached answer when the switch comes (the settled check has just refreshed it), as a
        random phase of the probe interval."""
        self._thread.start()
        wanted = random.randint(1, 4)
        wait_for(lambda: sum(a.ok for a in self.attempts) >= wanted, 60, "first issuances")
        return self

    def finish(self, until: float) -> list[Attempt]:
        self._until = until
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 30)
        return self.attempts

    def _run(self) -> None:
        while time.monotonic() < self._deadline:
            started = time.time()
            issued = self.scene.issue()
            work = self.scene.work / f"lego-{self.scene.runs}"
            kept = issued.output[-600:] if issued.seconds > SLOW or not issued.ok else ""
            issuer = _issuer(work) if issued.ok else ""
            self.attempts.append(Attempt(started, time.time(), issued.ok, issuer, kept))
            if self._until is not None and started >= self._until and issued.ok:
                return


def _issuer(work: Any) -> str:
    pem = (work / "certificates" / f"{DOMAIN}.crt").read_bytes()
    names = x509.load_pem_x509_certificate(pem).issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _intermediate(pebble: Pebble) -> str:
    cert = x509.load_pem_x509_certificate(pebble.management("/intermediates/0"))
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


class ServedWatch:
    """When both BIND servers first serve each target in turn, polled every 5 ms."""

    def __init__(self, scene: ClientScene, targets: tuple[str, ...]) -> None:
        self.scene, self.targets = scene, targets
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for target in self.targets:
            wait_for(functools.partial(self._reached, target), 120, target, step=0.005)
            if self._stop.is_set():
                return
            self.seen[target] = time.time()

    def _reached(self, target: str) -> bool:
        return self._stop.is_set() or _serves(self.scene, target)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


def _serves(scene: ClientScene, target: str) -> bool:
    return all(s.rrset(NAME, "CNAME") == {target} for s in scene.bind.servers)


def _settled(scene: ClientScene) -> bool:
    """The name on ca-a as the daemon, both servers and the clients' resolver see it, and
    both instances healthy (the health gate refuses a run to an instance that is not)."""
    found = (scene.daemon.health() or {}).get("services", {}).get("acme", {})
    healthy = all(h.get("state") == "healthy" for h in found.get("instances", {}).values())
    return (healthy and found.get("active") == "ca-a" and _serves(scene, A)
            and scene.unbound.resolve(NAME, "A") == ["127.0.0.2"])  # fmt: skip


def _drill(scene: ClientScene) -> tuple[int, str]:
    argv = [sys.executable, "-m", "dnsfailover", "drill", "acme", "--to", "ca-b", "--for",
            f"{DURATION}s", "--reason", "bench", "--wait", "-c", str(scene.config)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + 180)
    return done.returncode, (done.stdout + done.stderr).strip()


def _failures(attempts: list[Attempt], keep: int = 5) -> list[dict[str, Any]]:
    """The first failed issuances and the last (a killed CA refuses lego in about 0.03 s:
    the loop fails hundreds of times before the name moves)."""
    failed = [asdict(a) for a in attempts if not a.ok]
    return failed if len(failed) <= keep + 1 else [*failed[:keep], failed[-1]]


def _longest_gap(attempts: list[Attempt], start: float, end: float) -> float:
    """The longest time between two successful issuances (end to end) overlapping
    [start, end]: what a client waiting for its next certificate waited at most."""
    ends = [a.ended for a in attempts if a.ok]
    gaps = [after - before for before, after in itertools.pairwise(ends)
            if after >= start and before <= end]  # fmt: skip
    return max(gaps, default=float("nan"))


def _practice_run(scene: ClientScene, ca_b: str) -> dict[str, Any]:
    wait_for(lambda: _settled(scene), 60, "the name on ca-a, both instances healthy")
    load = os.getloadavg()[0]
    loop = ClientLoop(scene).start()
    watch = ServedWatch(scene, (B, A))
    code, output = _drill(scene)
    found = re.search(r"practice run (\w+)", output)
    run_id = found.group(1) if found else None

    def ended() -> dict[str, Any] | None:
        entries = scene.daemon.audit()
        return next((e for e in entries if e["event"] in ("practice_ended", "practice_refused")
                     and e.get("run") == run_id), None)  # fmt: skip

    wait_for(lambda: ended() is not None, 60, f"the end of practice run {run_id}")
    entry = ended()
    assert entry is not None
    attempts = loop.finish(until=time.time())
    seen = watch.stop()
    marks: dict[str, float] = entry["timeline"]
    sample: dict[str, Any] = {
        "run": run_id, "exit": code, "outcome": entry["outcome"], "why": entry["why"],
        "load": load, "issuances": len(attempts), "failed": sum(not a.ok for a in attempts),
        "by_ca_b": sum(a.issuer == ca_b for a in attempts),
        "failures": _failures(attempts),
        "timeline": marks,
        "slow": _slow(attempts, [w for leg in LEGS if (w := _window(marks, leg))]),
        "attempts": [[round(a.started, 3), round(a.seconds, 3), a.ok,
                      "ca-b" if a.issuer == ca_b else a.issuer and "ca-a"]
                     for a in attempts],
        "slow_outputs": [a.output for a in attempts if a.slow][:3],
    }  # fmt: skip
    if code != 0:
        sample["drill_output"] = output[-2000:]
    split = (marks.get("go.served", 0.0) + marks.get("back.decided", 0.0)) / 2
    for leg, target in (("go", B), ("back", A)):
        mine = [a for a in attempts if (a.started < split) == (leg == "go")]
        sample[leg] = _leg(marks, leg, seen.get(target), mine, attempts)
    return sample


def _window(marks: dict[str, float], leg: str) -> tuple[float, float] | None:
    """A switch as clients may see it: decided → verified through unbound, or served + the
    TTL a resolver may hold the old answer for, whichever is later."""
    decided, served = marks.get(f"{leg}.decided"), marks.get(f"{leg}.served")
    if decided is None or served is None:
        return None
    return decided, max(marks.get(f"{leg}.verified") or served, served + TTL)


def _slow(attempts: list[Attempt], windows: list[tuple[float, float]]) -> dict[str, int]:
    """Slow issuances that started inside the switches' windows and outside them (by their
    start: a 6 s issuance overlaps a window 6 s away), and how many of them waited for
    lego's re-poll of a pending challenge."""
    inside = [a for a in attempts if any(s <= a.started <= e for s, e in windows)]
    outside = [a for a in attempts if a not in inside]
    return {
        "inside": len(inside), "slow_inside": sum(a.slow for a in inside),
        "outside": len(outside), "slow_outside": sum(a.slow for a in outside),
        "slow_waited": sum(a.slow and (a.validation_wait() or 0) >= 4 for a in attempts),
    }  # fmt: skip


def _leg(
    marks: dict[str, float], leg: str, served_outside: float | None,
    mine: list[Attempt], attempts: list[Attempt],
) -> dict[str, float | None]:  # fmt: skip
    window = _window(marks, leg)
    if window is None:
        return {"failed": sum(not a.ok for a in mine)}
    decided, served = marks[f"{leg}.decided"], marks[f"{leg}.served"]
    verified = marks.get(f"{leg}.verified")
    return {
        "failed": sum(not a.ok for a in mine),
        "longest_gap": _longest_gap(attempts, *window),
        "slow_in_window": sum(
            a.slow and a.started <= window[1] and a.ended >= window[0] for a in attempts
        ),
        "decided_to_served": served - decided,
        "decided_to_served_outside": None if served_outside is None else served_outside - decided,
        "decided_to_verified": None if verified is None else verified - decided,
    }


def _failover(scene: ClientScene, ca_b: str) -> dict[str, Any]:
    _back_on_a(scene)
    wait_for(lambda: _settled(scene), 60, "the name on ca-a, both instances healthy")
    load = os.getloadavg()[0]
    loop = ClientLoop(scene).start()
    start = time.time()
    scene.a.kill()
    wait_for(lambda: _serves(scene, B), 30, "the name on ca-b everywhere", step=0.005)
    served = time.time()
    entry = _entry_after(scene.daemon, start)

    def verified() -> float | None:
        return next((e["time"] for e in scene.daemon.audit() if e["event"] == "client_verified"
                     and e.get("to") == "ca-b" and e["time"] >= start), None)  # fmt: skip

    wait_for(lambda: verified() is not None, 30, "client_verified")
    at = verified()
    assert at is not None
    attempts = loop.finish(until=at)
    trigger = entry["trigger_at"]
    served_at = entry["write_acked_at"] + (entry.get("propagation_seconds") or float("nan"))
    return {
        "load": load, "issuances": len(attempts), "failed": sum(not a.ok for a in attempts),
        "by_ca_b": sum(a.issuer == ca_b for a in attempts),
        "failures": _failures(attempts),
        "longest_gap": _longest_gap(attempts, start, max(at, served + TTL)),
        "detection": trigger - start,
        "kill_to_served_outside": served - start,
        "decided_to_served_outside": served - trigger,
        "decided_to_served": served_at - trigger,  # nan without propagation_seconds
        "decided_to_verified": at - trigger,
    }  # fmt: skip


def _summaries(samples: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    def values(key: str) -> list[float]:
        found = [s.get(key) for s in samples]
        return [float(v) for v in found if isinstance(v, int | float) and v == v]

    return {key: summary(values(key)) for key in keys} | {
        "failed_total": sum(s.get("failed", 0) for s in samples)
    }


TIMES = ("decided_to_served", "decided_to_served_outside", "decided_to_verified")
CLIENT = ("failed", "longest_gap")


def run(quick: bool = False) -> dict[str, Any]:
    reps, kills = (2, 2) if quick else (20, 8)
    results: dict[str, Any] = {
        "settings": {"reps": reps, "kills": kills, "duration": DURATION, "ttl": TTL,
                     "client": "lego 4.9", "checks": "1s / 800ms / rise 2 / fall 2"},
    }  # fmt: skip
    with Lab() as lab:
        scene = ClientScene.build(lab, lab.directory, {"max_flips_per_hour": 10000})
        ca_b = _intermediate(scene.b)  # ca-b is never restarted: its issuer stays
        planned = [_practice_run(scene, ca_b) for _ in range(reps)]
        unplanned = [_failover(scene, ca_b) for _ in range(kills)]
    for leg in LEGS:
        results[leg] = _summaries([s[leg] for s in planned], TIMES + CLIENT)
    results["planned"] = _summaries(planned, ("issuances", "failed", "by_ca_b")) | {
        "issuances_total": sum(s["issuances"] for s in planned),
        "lego_seconds": summary([a[1] for s in planned for a in s["attempts"] if a[2]]),
        "outcomes": [s["outcome"] for s in planned],
        "exits": [s["exit"] for s in planned],
        "slow": {k: sum(s["slow"][k] for s in planned) for k in planned[0]["slow"]},
        "samples": planned,
    }
    keys = ("detection", "kill_to_served_outside", "issuances", "by_ca_b", *TIMES, *CLIENT)
    results["unplanned"] = _summaries(unplanned, keys) | {"samples": unplanned}
    results["load_during"] = summary([s["load"] for s in planned + unplanned])
    return results


def _cell(values: dict[str, float] | None) -> str:
    if not values or not values.get("n"):
        return "-"
    return f"{values['median']:.3f} / {values['p95']:.3f} / {values['max']:.3f}"


def _slow_text(slow: dict[str, int]) -> str:
    total = slow["slow_inside"] + slow["slow_outside"]
    if not total:
        return f"No issuance took longer than {SLOW:.0f} s."
    return (
        f"{total} issuances took longer than {SLOW:.0f} s: {slow['slow_inside']} of the"
        f" {slow['inside']} that started inside a switch's decided → max(verified, served +"
        f" TTL), {slow['slow_outside']} of the {slow['outside']} that started outside;"
        f" {slow['slow_waited']} of them waited 5 s or more between lego's"
        ' "Trying to solve HTTP-01" and "The server validated our request": Pebble answered'
        " the challenge POST before its validator (PEBBLE_VA_ALWAYS_VALID) had marked it"
        " valid, and lego, given no Retry-After, polls again after 5 s."
    )


def _gaps_text(results: dict[str, Any]) -> str:
    legs = [s[leg] for s in results["planned"]["samples"] for leg in LEGS]
    long = [leg for leg in legs if (leg.get("longest_gap") or 0) > SLOW]
    if not long:
        return ""
    return (
        f"Of the {len(long)} switches with a gap over {SLOW:.0f} s,"
        f" {sum(bool(leg.get('slow_in_window')) for leg in long)} had such a slow issuance"
        " across their window."
    )


def report(results: dict[str, Any]) -> list[str]:
    settings, planned, unplanned = results["settings"], results["planned"], results["unplanned"]
    go, back = results["go"], results["back"]
    outcomes = sorted(set(planned["outcomes"]))
    tally = ", ".join(f"{planned['outcomes'].count(o)} {o}" for o in outcomes)
    exits = sorted(set(planned["exits"]))
    load = results["load_during"]
    rows = (("planned, go (ca-a → ca-b)", settings["reps"], go),
            ("planned, back (ca-b → ca-a)", settings["reps"], back),
            ("unplanned (ca-a killed)", settings["kills"], unplanned))  # fmt: skip
    lines = [
        f"{settings['reps']} practice runs (`drill acme --to ca-b --for {settings['duration']}s"
        f" --wait`: {tally}; exit {', '.join(map(str, exits))}) and {settings['kills']}"
        f" unplanned failovers (ca-a killed) in the same lab; {settings['client']} issuing"
        f" through unbound and the public name, one issuance after another, record TTL"
        f" {settings['ttl']:.0f} s, checks {settings['checks']}. Seconds, median / p95 / max."
        f" Load average (1 min) at each repetition's start: median {load['median']:.1f},"
        f" min {load['min']:.1f}, max {load['max']:.1f}.",
        "",
        "| switch | n | failed issuances | longest gap between successful issuances |"
        " decided → served everywhere | ... polled from outside | decided → verified as a"
        " client | outage → served everywhere |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, n, r in rows:
        outage = _cell(r.get("kill_to_served_outside"))
        lines.append(
            f"| {name} | {n} | {r['failed_total']} | {_cell(r['longest_gap'])} | "
            f"{_cell(r['decided_to_served'])} | {_cell(r['decided_to_served_outside'])} | "
            f"{_cell(r['decided_to_verified'])} | {outage} |"
        )
    lego = planned["lego_seconds"]
    return [
        *lines,
        "",
        f"{planned['issuances_total']} issuances over the practice runs, a median of"
        f" {planned['issuances']['median']:.0f} a run, {planned['by_ca_b']['median']:.0f} of"
        f" them from ca-b (by the certificate's issuer); one lego issuance took"
        f" {lego['median']:.2f} s median (p95 {lego['p95']:.2f}), so a gap of about one"
        " issuance is no interruption at all. A failed issuance counts for the switch on its"
        " side of the midpoint between go.served and back.decided; the gap is the longest"
        " between two successful issuances (end to end) overlapping decided → max(verified,"
        " served + TTL). The unplanned failover's failed issuances are lego refused at once"
        " (connection refused, about 0.03 s each) while the name still sent it to the killed"
        " CA, and tried again at once.",
        "",
        f"{_slow_text(planned['slow'])} {_gaps_text(results)}".rstrip(),
        "",
        "decided: for a practice switch its timeline's `decided` (the move planned, after the"
        " record was read); for the unplanned failover the deciding probe result"
        " (`trigger_at`), so its reading of the record and deciding are inside, and detection"
        f" ({unplanned['detection']['median']:.2f} s median) is not. served everywhere: the"
        " timeline's `served` for a practice switch, `write_acked_at + propagation_seconds`"
        " for the failover; polled from outside: both BIND servers every 5 ms from the"
        " benchmark. verified: the timeline's `verified`, or the `client_verified` entry; it"
        " waits, through unbound, for the old answer's TTL to run out (asking again every"
        " 0.5 s), so it spreads over 0-3 s with the phase of unbound's cached answer; each"
        " repetition waits for 1-4 successful issuances (at random) before the switch, so that"
        " phase is random.",
    ]
