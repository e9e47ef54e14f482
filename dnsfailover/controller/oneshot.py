"""One round of probes, run concurrently, and the health it implies.

For the commands that act once (`check`, `plan`, `run --once`, `drain` and `failover` without
a daemon): a single round cannot satisfy rise/fall, so each check counts as `rise = fall = 1`,
and an overloaded answer counts as up (alive, shedding load).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from dnsfailover.controller.runtime import ProbeJob
from dnsfailover.health import HealthTracker, InstanceHealth
from dnsfailover.probes import Outcome, ProbeResult


@dataclass(frozen=True)
class Observation:
    job: ProbeJob
    result: ProbeResult


def probe_once(jobs: Iterable[ProbeJob], workers: int = 32) -> list[Observation]:
    jobs = list(jobs)
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = [(j, pool.submit(j.probe.run, time.monotonic() + j.timeout)) for j in jobs]
        return [Observation(j, f.result()) for j, f in futures]


def one_round_health(
    observations: Iterable[Observation],
) -> dict[str, dict[str, InstanceHealth]]:
    tracker = HealthTracker()
    observations = list(observations)
    for o in observations:
        tracker.register(o.job.service, o.job.instance, o.job.probe.check, o.job.probe.required)
    for o in observations:
        result = o.result
        if result.outcome is Outcome.OVERLOADED:
            result = replace(result, outcome=Outcome.HEALTHY)
        tracker.observe(o.job.service, o.job.instance, result, rise=1, fall=1)
    snapshot = tracker.snapshot(time.time())
    return {service: dict(instances) for service, instances in snapshot.services.items()}
