"""What the daemon feeds: health, every service's change, coordination, and what status shows.

`Controller` wires the layers for the daemon, on its controller thread: a probe result goes to
the health tracker (and a state change to the journal and the hooks, as a recovery); a change
of health, a tick, an operator's request or a finished step becomes an event for the service's
record (`Changes`, changes.py), whose actions the carrier runs on the workers. With several
controllers the coordination rounds come in here too: a change of leadership is a `Lead`
event for every service, and the leader's decisions are made from the sites' quorum.
`health.json` and systemd's status line are shown by `Showing` (showing.py), from here.
Imports the controller's modules and everything below; the daemon (the shell around it:
signals, the loop, reload) imports it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnsfailover.controller import telemetry
from dnsfailover.controller.carrier import Flights
from dnsfailover.controller.changes import Changes, Context
from dnsfailover.controller.drills import Drills
from dnsfailover.controller.journal import Journal, measurements
from dnsfailover.controller.leadership import Leadership
from dnsfailover.controller.machine import Do, Done, Lead, Rules, Tick, Wake
from dnsfailover.controller.pipeline import Pipeline
from dnsfailover.controller.practice import Run
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.showing import Showing
from dnsfailover.controller.state import StateStore
from dnsfailover.controller.workers import Flight
from dnsfailover.errors import StateError
from dnsfailover.health import HealthSnapshot, HealthTracker, InstanceHealth, State
from dnsfailover.metrics import Metrics
from dnsfailover.notify import Notifications
from dnsfailover.results import ProbeResult

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0  # the longest wait before retrying a service whose change failed


class Controller:
    def __init__(
        self,
        runtime: Runtime,
        dry_run: bool,
        flights: Flights,
        wake_coordination: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.flights = flights
        self._dry_run_flag = dry_run
        config = runtime.config
        self.store = StateStore(config.state_dir)
        self.tracker = HealthTracker()
        self.metrics = Metrics()
        self.outcomes = telemetry.Outcomes(self.metrics)
        self.notifications = self._notifications()
        self.journal = Journal(self.store, [self._notify])
        self.pipeline = Pipeline(self.store, clock, dry_run=dry_run or config.dry_run)
        # Several controllers (coordination:): only the leader decides and writes, from the
        # quorum of the sites' reports; it first moves each service's fence to its token.
        self.leadership = None
        if config.coordination is not None:
            self.leadership = Leadership(
                config.coordination,
                self.store,
                self.journal,
                wake_coordination,
                clock,
                stale_after=3 * config.longest_interval,
                handover_after=config.handover_bound,
            )
        leadership = self.leadership
        context = Context(
            runtime=lambda: self.runtime,
            health=self.health,
            settle_until=lambda key: self.settle_until.get(key, -math.inf),
            site=leadership.site if leadership else None,
            may_write=leadership.may_write if leadership else lambda: True,
            concluded=self._concluded,
            verified=self._verified,
            practiced=self._practiced,
        )
        # The control socket (door.py) waits for the changes it asked for: told here when one
        # concludes and when its flip is verified, on this thread.
        self.on_concluded: list[Callable[[Report], None]] = []
        self.on_verified: list[Callable[[Report], None]] = []
        # On the wall clock (as the pipeline): a practice run's end is saved, and must mean
        # the same instant to the daemon that finds it after a restart.
        self.changes = Changes(self.pipeline, self.journal, self._rules, context, flights,
                               clock=clock)  # fmt: skip
        self.runs = self.journal.runs
        self.drills = Drills(self.runs, self.metrics)  # practice runs asked for, or due
        # Runs a previous daemon left on, ended on time; with coordination a leader's only,
        # when it leads (coordination_changed).
        resumed = self.changes.resume() if self.leadership is None else {}
        if self.leadership is not None:
            self.leadership.services = lambda: list(self.runtime.config.services)
        self.settle_until: dict[str, float] = {}  # service → its settle window's end
        self.showing = Showing(lambda: self.runtime.config, self.tracker, self.changes,
                               flights, self.store, self.journal, self.metrics,
                               self.leadership, self.health, lambda: self.settle_until,
                               clock)  # fmt: skip
        self.ready = False
        self._seen_jobs: set[str] = set()
        self._job_keys: set[str] = set()
        self._retired: list[Runtime] = []  # replaced by a reload, closed once no step uses them
        self._last_turn = time.monotonic()  # the loop's last turn (silence is judged each turn)
        self._quiet_until = -math.inf  # after a stall of our own, silence is not judged
        self._register(runtime)
        for service, run in resumed.items():
            self._resumed(service, run)

    def _notifications(self) -> Notifications:
        failed = self.metrics.notifications_failed
        return Notifications(self.runtime.config.notify, lambda kind: failed.labels(kind).inc())

    def _notify(self, entry: dict[str, Any]) -> None:
        """An event from the journal: count refusals, and tell the hooks."""
        if entry.get("event") in ("refusal", "all_down"):
            self.metrics.refusals.labels(entry["service"], entry.get("rule") or "").inc()
        self.notifications.send(entry)

    @property
    def tick(self) -> float:
        intervals = [s.checks.interval for s in self.runtime.config.services.values()]
        return max(1.0, min([10.0, *intervals]))

    def _rules(self, key: str) -> Rules:
        return Rules(
            first_backoff=self.tick,
            max_backoff=MAX_BACKOFF,
            coordinated=self.leadership is not None,
            dry_run=self.pipeline.dry_run,
            verify=self.runtime.config.services[key].client_verify,
        )

    def _register(self, runtime: Runtime) -> None:
        """Track the runtime's checks; health of checks that stay carries over a reload. The
        settle window starts again for every service."""
        now = self.clock()
        for job in runtime.jobs:
            self.tracker.register(job.service, job.instance, job.probe.check, job.probe.required,
                                  inconclusive_after=job.inconclusive_after, now=now)  # fmt: skip
        self.tracker.keep_only({(j.service, j.instance, j.probe.check) for j in runtime.jobs})
        self._job_keys = {j.key for j in runtime.jobs}
        try:
            entries, _ = self.store.read_audit()
        except StateError:
            entries = []
        for key, service in runtime.config.services.items():
            health = self.tracker.instances(key, now)
            new = key not in self.changes.records
            telemetry.init_service(self.metrics, key, health, new=new)
            self.outcomes.start(key, service, measurements(entries, key))
            on = key in self.changes.records and self.changes.record(key).run is not None
            self.drills.start(key, service, now, on)
        self.settle_until = {
            key: now + service.checks.settle_window
            for key, service in runtime.config.services.items()
        }
        self.showing.settling()

    def _practiced(self, service: str, run: Run) -> None:
        """A step of a practice run: metrics; with several controllers, the leader puts it in
        etcd (a new leader ends the run on time, every site sees its report)."""
        current = self.changes.record(service).run
        self.drills.practiced(service, run, current is not None)
        if self.leadership is not None and self.leadership.token is not None:
            self.leadership.share_practice(service, run.to_json(), run.on)

    # ------------------------------------------------------------------ start, reload, stop

    def start(self) -> None:
        if self.leadership is not None:
            self.leadership.start()

    def swap(self, runtime: Runtime) -> None:
        """A reload: the new runtime in, the old one closed once no step uses it."""
        old = self.runtime.config
        if runtime.config.coordination != old.coordination:
            log.warning("reload: the coordination section changes only at restart; keeping it")
        if runtime.config.control_socket != old.control_socket:  # the door listens on, as is
            log.warning("reload: control_socket changes only at restart; keeping %s",
                        old.control_socket)  # fmt: skip
        if runtime.config.state_dir != old.state_dir:
            log.warning("reload: state_dir changes only at restart; keeping %s",
                        self.store.directory)  # fmt: skip
        self._retired.append(self.runtime)  # its steps in flight finish against it
        self.runtime = runtime
        self._close_retired()
        self._register(runtime)
        if self.leadership is not None:  # a service new with this config leads like the rest
            for service in runtime.config.services:
                if self.changes.record(service).token != self.leadership.token:
                    self.changes.feed(service, Lead(self.leadership.token))
        self.notifications.close()
        self.notifications = self._notifications()
        self.pipeline.dry_run = self._dry_run_flag or runtime.config.dry_run
        self.metrics.reloads.labels("ok").inc()

    def reload_failed(self, error: str) -> None:
        self.metrics.reloads.labels("failed").inc()
        self.journal.event("reload_failed", error=error)

    def stop(self, left: list[Flight]) -> None:
        """After the steps in flight had their grace: the ones still writing are abandoned."""
        self.changes.stopping = True
        if self.leadership is not None:
            self.leadership.stop()  # after the writes: the lease covered them
        for flight in left:
            report = flight.payload
            if flight.kind is not Do.WRITE or not isinstance(report, Report):
                continue
            report.abandoned = True
            log.error("write_abandoned service=%s change=%s after=%.1fs (shutdown_grace %s)",
                      flight.service, report.change, flight.age(time.monotonic()),
                      self.runtime.config.shutdown_grace)  # fmt: skip
            self.journal.decision(report)
        self.notifications.close()
        self.metrics.close()
        for runtime in (*self._retired, self.runtime):
            runtime.close()

    def _close_retired(self) -> None:
        busy = self.flights.owners()
        for old in [r for r in self._retired if id(r) not in busy]:
            old.close()
            self._retired.remove(old)

    # ------------------------------------------------------------------ events in

    def observe(self, job: ProbeJob, result: ProbeResult, changed: dict[str, float]) -> None:
        """A probe result: health, metrics; a service whose instance changed state is noted
        with when that result finished (its change's trigger)."""
        if job.key not in self._job_keys:
            return  # a result from before a reload, for a probe that is gone
        self._seen_jobs.add(job.key)
        if self.leadership is not None:
            self.leadership.beat()
        telemetry.record_probe(self.metrics, job, result)
        before, after = self.tracker.observe(job.service, job.instance, result, job.rise, job.fall,
                                             now=self.clock())  # fmt: skip
        self._health_changed(job.service, before, after, result.observed_at + result.latency,
                             changed)  # fmt: skip

    def _health_changed(
        self,
        service: str,
        before: InstanceHealth,
        after: InstanceHealth,
        at: float,
        changed: dict[str, float],
    ) -> None:
        telemetry.record_health(self.metrics, service, after)
        if before.state is after.state:
            return
        if before.state is State.UNHEALTHY and after.state is State.HEALTHY:
            self.journal.event("recovery", service, notify=True, instance=after.name,
                               reason=after.reason)  # fmt: skip
        log.info("health_changed service=%s instance=%s from=%s to=%s reason=%s", service,
                 after.name, before.state.value, after.state.value, after.reason)  # fmt: skip
        changed.setdefault(service, at)

    def silence(self, changed: dict[str, float]) -> None:
        """Time passed without results: a check with no passing result for its bound turns
        UNHEALTHY by silence alone. Not right after this loop itself stalled (a gap longer than
        a tick): for one interval and timeout after that, our own silence is not the
        instances'."""
        now, gap = self.clock(), time.monotonic() - self._last_turn
        self._last_turn = time.monotonic()
        if gap > 2 * self.tick:
            checks = [s.checks for s in self.runtime.config.services.values()]
            self._quiet_until = now + max([0.0, *(c.interval + c.timeout for c in checks)])
            log.warning("loop_stalled seconds=%.1f: silence is not judged until it has passed",
                        gap)  # fmt: skip
        if now < self._quiet_until:
            return
        for service, before, after in self.tracker.advance(now):
            self._health_changed(service, before, after, now, changed)

    def seen_every_probe(self) -> bool:
        return self._seen_jobs >= self._job_keys

    def land(self, flight: Flight, stopping: bool) -> None:
        """A step finished on a worker: its outcome back to the service's record."""
        self.flights.land(flight)
        self._close_retired()
        self.changes.stopping = self.changes.stopping or stopping
        self.changes.feed(flight.service, Done(flight.kind, flight.payload))  # type: ignore[arg-type]

    def wake(self, changed: Mapping[str, float]) -> None:
        for service in sorted(changed):
            self.changes.feed(service, Wake(Intent(trigger_at=changed[service])))

    def cycle(self, stopped: Callable[[], bool]) -> None:
        """Every service's tick (an operator's request first, for a leader); then report. With
        several controllers: read DNS, publish our report, hand over if we cannot lead."""
        if self.leadership is not None:
            self.leadership.tick(self.snapshot(), self._read_dns)
        for service in self.runtime.config.services:
            if stopped():
                return
            try:
                self._requests(service)
                self._drills(service)
                self.changes.feed(service, Tick())
            except Exception:  # a bug in one service's tick must not stop the others
                log.exception("cycle_crashed service=%s", service)
        self.showing.tell_unsettled()
        self.write_health()
        self.metrics.last_cycle.set(self.clock())

    def _requests(self, service: str) -> None:
        """The leader carries out an operator's failover request (from any controller's CLI)."""
        if self.leadership is None or self.leadership.token is None:
            return
        request = self.leadership.take_request(service)
        if request is not None:
            intent = Intent(Origin.OPERATOR, request.to, request.reason, request.id)
            self.changes.feed(service, Wake(intent))

    def _resumed(self, service: str, run: Run) -> None:
        """A run the last leader left on, taken over with the lead: audited, ended on time."""
        site = self.leadership.site if self.leadership is not None else None
        self.journal.event("practice_resumed", service, run=run.id, to=run.target,
                           ends_at=run.ends_at, site=site)  # fmt: skip
        self.drills.resumed(service, run)

    def _drills(self, service: str) -> None:
        """A practice run asked for (the control socket; with several controllers, any site's
        through etcd, for the leader) or due (the schedule): an intent for the record (which
        refuses it when following)."""
        now = self.clock()
        leadership = self.leadership
        leading = leadership is None or leadership.token is not None
        settled = self.ready and now >= self.settle_until.get(service, -math.inf)
        idle = self.changes.record(service).run is None
        settings = self.runtime.config.services[service]
        relayed, last = None, None  # with several controllers: asked on any site, run by any
        if leadership is not None and leadership.token is not None:
            relayed, last = leadership.take_drill(service), leadership.last_run(service)
        intent = self.drills.intent(service, settings, leading and settled and idle, now,
                                    relayed, last)  # fmt: skip
        if intent is not None:
            self.changes.feed(service, Wake(intent))

    # ------------------------------------------------------------------ several controllers

    def health(self, service: str) -> Mapping[str, InstanceHealth]:
        """What the policy decides from: this controller's view, or the sites' quorum."""
        own = self.tracker.instances(service, self.clock())
        return own if self.leadership is None else self.leadership.health(service, own)

    def publish(self, changed: Mapping[str, float]) -> None:
        """This site's report for the other controllers at once when a verdict changed (and
        every tick: `Leadership.tick`)."""
        if self.leadership is not None and (changed or not self.ready):
            self.leadership.publish(self.snapshot())

    def _read_dns(self) -> None:
        """Read every service's record once (raises the first failure): can this site reach
        its DNS service? Runs on the leadership's reader thread."""
        runtime = self.runtime
        for service in runtime.config.services.values():
            runtime.provider_for(service).read(service.name, service.type)

    def coordination_changed(self, force: bool = False) -> bool:
        """A coordination round saw something new: True when we lead (every service is then
        ticked: a new leader moves each fence first, a new report may change a decision)."""
        if self.leadership is None:
            return force
        before = self.leadership.token
        leading = self.leadership.changed()
        if self.leadership.token != before or force:
            for service in self.runtime.config.services:
                self.changes.feed(service, Lead(self.leadership.token))
            if self.leadership.token is not None:  # a run the last leader left on: ours now
                for service, run in self.changes.resume().items():
                    self._resumed(service, run)
        if not leading:
            self.write_health()
        return leading

    def _concluded(self, report: Report) -> None:
        if self.leadership is not None and report.fence is not None:
            self.leadership.share(report)
            if report.applied:
                self.leadership.reach.ok(time.monotonic())
            elif report.transient and report.error is not None:
                self.leadership.reach.failed(time.monotonic(), report.error)
        settings = self.runtime.config.services.get(report.service)
        if settings is not None:
            active = self.changes.record(report.service).active
            self.outcomes.concluded(report, settings, active, self._flips_last_hour(report.service))
        for hook in self.on_concluded:
            hook(report)

    def _verified(self, report: Report) -> None:
        telemetry.record_verification(self.metrics, report)
        for hook in self.on_verified:
            hook(report)

    def _flips_last_hour(self, service: str) -> int:
        try:
            flips = self.store.load().flip_times(service)
        except StateError:
            return 0
        now = self.clock()
        return sum(1 for t in flips if now - t < 3600)

    # ------------------------------------------------------------------ what status shows

    def snapshot(self) -> HealthSnapshot:
        return self.showing.snapshot()

    def status_line(self) -> str:
        return self.showing.status_line()

    def write_health(self) -> None:
        self.showing.write_health()
