"""The commands that act once: one round of probes, the health it implies, and one reconcile.

For `check`, `plan`, `run --once`, and `drain` or `failover` without a daemon. A single round
cannot satisfy rise/fall, so each check counts as `rise = fall = 1`, and an overloaded answer
counts as up (alive, shedding load). A check whose only result was inconclusive (the probe's
own error) stays UNKNOWN, and one round is all there is: the settle window never ends inside
it, so such an instance makes a decision wait when it could change it (policy/decide.py).
They go through the same `Reconciler` as the daemon: one path from health to plan.
Imports the reconciler and the layers below; never the daemon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from dnsfailover.config.consistency import in_zone
from dnsfailover.config.models import Service
from dnsfailover.controller.reconcile import Reconciler, Report
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.controller.verify import ClientVerifier
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.health import HealthTracker, InstanceHealth, State
from dnsfailover.providers import Provider
from dnsfailover.results import Outcome, ProbeResult

ONE_ROUND = math.inf  # the settle window of a single round: it never ends inside it


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


def verify_flip(reconciler: Reconciler, service: Service, report: Report) -> None:
    """After a move served everywhere, now: the new target as a client sees it (the daemon
    does the same after its flips, on a worker). Sets `report.verification` and audits it."""
    if not service.client_verify or not report.flipped:
        return
    assert report.plan is not None and report.plan.change is not None
    target = next(i for i in service.instances if i.name == report.plan.decision.target)
    verifier = ClientVerifier(service, service.checks.connect_timeout)
    deadline = time.monotonic() + verify_window(service)
    report.verification = verifier.verify(target, report.plan.change.after, deadline)
    reconciler.finish_verification(report)


def run_once(
    runtime: Runtime,
    store: StateStore,
    dry_run: bool,
    services: Collection[str] | None = None,
) -> list[Report]:
    """`run --once` (every service) and `drain` without a daemon (the drained one's)."""
    keys = [k for k in runtime.config.services if services is None or k in services]
    health = one_round_health(probe_once(j for j in runtime.jobs if j.service in keys))
    reconciler = Reconciler(store, dry_run=dry_run or runtime.config.dry_run)
    reports = []
    for key in keys:
        service = runtime.config.services[key]
        provider = runtime.provider_for(service)
        report = reconciler.reconcile(
            key, service, provider, health.get(key, {}), settle_until=ONE_ROUND
        )
        verify_flip(reconciler, service, report)
        reports.append(report)
    return reports


def assume(
    health: Mapping[str, InstanceHealth], assumed: Mapping[str, State]
) -> dict[str, InstanceHealth]:
    """Health with some instances' state overridden (`plan --assume NAME=down`)."""
    return {n: replace(h, state=assumed.get(n, h.state)) for n, h in health.items()}


def preview(
    runtime: Runtime,
    store: StateStore,
    assumed: Mapping[str, State],
    zone_file: Provider | None = None,
) -> list[tuple[Report, Provider]]:
    """`plan`: what one reconcile of every service would do now, writing nothing; names inside
    `zone_file`'s zone are planned against that file instead of their provider."""
    health = one_round_health(probe_once(runtime.jobs))
    reconciler = Reconciler(store)
    found = []
    for key, service in runtime.config.services.items():
        provider = runtime.provider_for(service)
        if zone_file is not None and in_zone(service.name, zone_file.zone):
            provider = zone_file
        instances = assume(health.get(key, {}), assumed)
        report = reconciler.preview(key, service, provider, instances, settle_until=ONE_ROUND)
        found.append((report, provider))
    return found
