"""The commands that act once: one round of probes, the health it implies, and one change.

For `check`, `plan`, `run --once`, and `drain` or `failover` without a daemon. A single round
cannot satisfy rise/fall, so each check counts as `rise = fall = 1`, and an overloaded answer
counts as up (alive, shedding load). A check whose only result was inconclusive (the probe's
own error) stays UNKNOWN, and one round is all there is: the settle window never ends inside
it, so such an instance makes a decision wait when it could change it (policy/decide.py).
A change runs through the daemon's own path (changes.py: the machine, the pipeline, the
journal), its steps carried out inline: the same rules, retries and entries. What differs is
only the rules' bounds: a transient error is tried twice more (after 0.5 s and 1 s), a hard one
is the answer, and an operator's move meeting a conflict is never retried (exit 4).
Imports the change path and the layers below; never the daemon.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from dnsfailover.config.consistency import in_zone
from dnsfailover.controller.changes import Changes, Context, run_inline
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.machine import Rules, Wake
from dnsfailover.controller.pipeline import Pipeline
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.health import HealthTracker, InstanceHealth, State
from dnsfailover.notify import Notifications
from dnsfailover.providers import Provider
from dnsfailover.results import Outcome, ProbeResult

ONE_ROUND = math.inf  # the settle window of a single round: it never ends inside it
MAX_CONFLICTS = 3  # the daemon's, too (machine.Rules)


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


class OneShot:
    """The change path for a command that acts once; a context manager (its hooks are
    flushed at the end)."""

    def __init__(
        self,
        runtime: Runtime,
        store: StateStore,
        health: Mapping[str, Mapping[str, InstanceHealth]],
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.sleep = sleep
        self.health = health
        self.notifications = Notifications(runtime.config.notify)
        self.journal = Journal(store, [self.notifications.send])
        self.pipeline = Pipeline(store, dry_run=dry_run or runtime.config.dry_run)
        context = Context(
            runtime=lambda: runtime,
            health=lambda key: self.health.get(key, {}),
            settle_until=lambda key: ONE_ROUND,
        )
        self._max_conflicts = MAX_CONFLICTS
        self.changes = Changes(self.pipeline, self.journal, self._rules, context, clock=clock)

    def _rules(self, key: str) -> Rules:
        return Rules(
            first_backoff=0.5,
            max_backoff=1.0,
            max_conflicts=self._max_conflicts,
            dry_run=self.pipeline.dry_run,
            verify=self.runtime.config.services[key].client_verify,
            give_up_after=2,
            retry_only_transient=True,
        )

    def change(self, key: str, intent: Intent | None = None) -> Report:
        """Decide, and write what the decision asks, now; the concluded report."""
        intent = intent or Intent()
        self._max_conflicts = 0 if intent.origin is Origin.OPERATOR else MAX_CONFLICTS
        record = run_inline(self.changes, key, Wake(intent), self.sleep)
        assert record.last is not None
        return record.last

    def __enter__(self) -> OneShot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.notifications.close()


def run_once(
    runtime: Runtime,
    store: StateStore,
    dry_run: bool,
    services: Collection[str] | None = None,
) -> list[Report]:
    """`run --once` (every service) and `drain` without a daemon (the drained one's)."""
    keys = [k for k in runtime.config.services if services is None or k in services]
    health = one_round_health(probe_once(j for j in runtime.jobs if j.service in keys))
    with OneShot(runtime, store, health, dry_run) as once:
        return [once.change(key) for key in keys]


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
    pipeline = Pipeline(store)
    found = []
    for key, service in runtime.config.services.items():
        provider = runtime.provider_for(service)
        if zone_file is not None and in_zone(service.name, zone_file.zone):
            provider = zone_file
        instances = assume(health.get(key, {}), assumed)
        report = pipeline.prepare(
            key, service, provider, instances, settle_until=ONE_ROUND, preview=True
        )
        found.append((report, provider))
    return found
