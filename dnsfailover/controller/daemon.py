"""The daemon: one controller thread that owns every decision; probes and writes run elsewhere.

Probe results (from `ProbeScheduler`) and write outcomes (from `Workers`) arrive on one queue.
The controller thread takes them in order, feeds the health tracker, and reconciles a service
at once when one of its instances changes state, and every `tick` otherwise (to honour pins
and drains set from the CLI, to retry a failed write, to check an unconfirmed change again). A
decided change runs on a worker: one slow DNS write or propagation wait never holds another
service, the health bookkeeping, or the watchdog. Signal handlers only set flags: SIGTERM and
SIGINT stop, after waiting up to `shutdown_grace` for writes in flight; SIGHUP reloads — the
new config is validated and built in full before it replaces the old one, health carries over,
and writes in flight finish against the provider they started with. systemd is told READY once
the first probe round is in, and WATCHDOG=1 as long as the controller loop turns.
Imports the controller's modules and everything below; only the CLI imports it.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from dnsfailover.config import load_config
from dnsfailover.controller import documents, telemetry
from dnsfailover.controller.backoff import Backoff
from dnsfailover.controller.leadership import Leadership
from dnsfailover.controller.reconcile import MAX_CONFLICTS, Reconciler, Report
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.scheduler import ProbeScheduler
from dnsfailover.controller.state import StateStore
from dnsfailover.controller.verify import ClientVerifier
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.controller.workers import Flight, Workers
from dnsfailover.errors import ConfigError, DnsFailoverError, StateError
from dnsfailover.health import HealthSnapshot, HealthTracker, InstanceHealth, State
from dnsfailover.metrics import Metrics
from dnsfailover.notify import Notifications
from dnsfailover.plan.budget import convergence_budget
from dnsfailover.policy import Decision, Kind
from dnsfailover.results import ProbeResult
from dnsfailover.systemd import Notifier

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0  # the longest wait before retrying a service whose reconcile failed
COORDINATION = "coordination"  # the coordinator saw something new (leadership, reports)
Item = tuple[ProbeJob, ProbeResult] | Flight | str | None  # None: wake up (a signal)


class Daemon:
    def __init__(
        self,
        config_path: Path,
        dry_run: bool = False,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.clock = clock
        self._dry_run_flag = dry_run
        loaded = load_config(config_path)
        for warning in loaded.warnings:
            log.warning("config_warning %s", warning)
        self.runtime = Runtime.build(loaded.config, clock)
        self.store = StateStore(loaded.config.state_dir)
        self.tracker = HealthTracker()
        self.metrics = Metrics()
        self.notifications = self._notifications()
        self.reconciler = self._reconciler()
        self.queue: queue.Queue[Item] = queue.Queue()
        self.active: dict[str, str | None] = {}
        self.last_reports: dict[str, Report] = {}
        self.settle_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._reload = False
        self._scheduler: ProbeScheduler | None = None
        self._workers = Workers(len(loaded.config.services), self.queue.put)
        # The client's check of a flip may wait a TTL: a pool of its own, so that a check in
        # progress never holds any service's next change.
        self._checks = Workers(len(loaded.config.services), self.queue.put)
        self._retired: list[Runtime] = []  # replaced by a reload, closed once no write uses them
        self._seen_jobs: set[str] = set()
        self._job_keys: set[str] = set()
        self._retries = Backoff(self.tick, MAX_BACKOFF)  # failed reconciles
        self._conflicts: dict[str, int] = {}  # conflicts in a row, per service
        self._unconfirmed: dict[str, Report] = {}  # applied, not yet served everywhere
        self._confirms = Backoff(self.tick, MAX_BACKOFF)  # unconfirmed changes, checked again
        self._unsettled_told: set[tuple[str, str]] = set()
        self._measured: dict[str, tuple[list[float], list[float]]] = {}  # writes, propagations
        self._last_beat = 0.0
        self._ready = False
        # Several controllers (coordination:): only the leader decides and writes, from the
        # quorum of the sites' reports; it first moves each service's fence to its token.
        coordination = loaded.config.coordination
        self.leadership = (
            Leadership(coordination, self.store, lambda: self.queue.put(COORDINATION), clock)
            if coordination
            else None
        )
        self._register(self.runtime)

    def _reconciler(self) -> Reconciler:
        dry = self._dry_run_flag or self.runtime.config.dry_run
        return Reconciler(self.store, self.clock, dry_run=dry, on_event=self._on_event)

    def _on_event(self, entry: dict[str, Any]) -> None:
        """An audited decision: count refusals once per new one, and notify."""
        if entry.get("event") in ("refusal", "all_down"):
            self.metrics.refusals.labels(entry["service"], entry.get("rule") or "").inc()
        self.notifications.send(entry)

    def _notifications(self) -> Notifications:
        failed = self.metrics.notifications_failed
        return Notifications(self.runtime.config.notify, lambda kind: failed.labels(kind).inc())

    @property
    def tick(self) -> float:
        intervals = [s.checks.interval for s in self.runtime.config.services.values()]
        return max(1.0, min([10.0, *intervals]))

    def _register(self, runtime: Runtime) -> None:
        """Track the runtime's checks; health of checks that stay carries over a reload. The
        settle window starts again for every service."""
        for job in runtime.jobs:
            self.tracker.register(job.service, job.instance, job.probe.check, job.probe.required)
        self.tracker.keep_only({(j.service, j.instance, j.probe.check) for j in runtime.jobs})
        self._job_keys = {j.key for j in runtime.jobs}
        try:
            entries, _ = self.store.read_audit()
        except StateError:
            entries = []
        for key, service in runtime.config.services.items():
            health = self.tracker.instances(key)
            telemetry.init_service(self.metrics, key, health, new=key not in self.active)
            measured = self._measured.get(key) or documents.measurements(entries, key)
            self._measured[key] = measured
            telemetry.record_budget(self.metrics, key, convergence_budget(service, *measured))
        now = self.clock()
        self.settle_until = {
            key: now + service.checks.settle_window
            for key, service in runtime.config.services.items()
        }
        self._unsettled_told.clear()

    # ------------------------------------------------------------------ signals

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
        self.queue.put(None)

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self.queue.put(None)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        if not self.store.claim_daemon():
            raise StateError(
                f"another daemon (pid {self.store.daemon_pid()}) holds {self.store.directory}"
            )
        try:
            self._check_state_directory()
            self.install_signal_handlers()
            self._serve_metrics()
            if self.leadership is not None:
                self.leadership.start()
            self._start_probes()
            log.info(
                "started services=%d probes=%d dry_run=%s",
                len(self.runtime.config.services),
                len(self.runtime.jobs),
                self.reconciler.dry_run,
            )
            self._loop()
        finally:
            self._shut_down()
        return 0

    def _serve_metrics(self) -> None:
        listen = self.runtime.config.metrics_listen
        if not listen:
            return
        try:
            self.metrics.serve(listen)
        except OSError as e:
            raise ConfigError(
                f"metrics_listen {listen}: cannot listen there: {e.strerror or e}"
            ) from None

    def _loop(self) -> None:
        next_tick = time.monotonic() + self.tick
        while not self._stop.is_set():
            wait = next_tick - time.monotonic()
            if self.notifier.watchdog_interval:
                wait = min(wait, self.notifier.watchdog_interval / 2)
            self._drain_queue(timeout=max(0.0, wait))
            if self._reload:
                self._do_reload()
            if self._stop.is_set():
                break
            if time.monotonic() >= next_tick:
                self.cycle()
                next_tick = time.monotonic() + self.tick
            self._beat()

    def _beat(self) -> None:
        """WATCHDOG=1 while the controller loop turns (writes in flight do not hold it)."""
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        if interval is None or now - self._last_beat >= interval / 2:
            self.notifier.watchdog()
            self._last_beat = now

    def _shut_down(self) -> None:
        self.notifier.stopping()
        self._stop_probes()
        grace = self.runtime.config.shutdown_grace
        left = self._workers.drain(grace)
        self._checks.drain(0.0)  # a client check writes nothing: not waited for
        if self.leadership is not None:
            self.leadership.stop()  # after the writes: the lease covered them
        self._drain_queue(timeout=0.0)  # the outcomes that came in while we waited
        for flight in left:
            report: Report = flight.payload
            report.abandoned = True
            log.error(
                "write_abandoned service=%s change=%s after=%.1fs (shutdown_grace %s)",
                flight.service,
                report.change,
                flight.age(time.monotonic()),
                grace,
            )
            self.reconciler.finish(report)
        self.notifications.close()
        self.metrics.close()
        for runtime in (*self._retired, self.runtime):
            runtime.close()
        self.store.release_daemon()
        log.info("stopped")

    def _check_state_directory(self) -> None:
        """Start-up hygiene after a crash: stale temp files, a torn last audit line."""
        for name in self.store.clean_leftovers():
            log.warning("state_leftover_removed file=%s", name)
        self.store.load()  # a corrupt state file stops the daemon here, before any DNS change
        _, problems = self.store.read_audit()
        for problem in problems:
            log.warning("audit_torn_line %s", problem)

    def _start_probes(self) -> None:
        self._scheduler = ProbeScheduler(
            self.runtime.jobs, lambda job, result: self.queue.put((job, result))
        )
        self._scheduler.start()

    def _stop_probes(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None

    def _drain_queue(self, timeout: float) -> None:
        try:
            item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return
        changed: dict[str, float] = {}  # service → when its first health-changing result finished
        landed: list[Flight] = []
        coordination = False
        while item is not None:
            if isinstance(item, Flight):
                landed.append(item)
            elif isinstance(item, str):
                coordination = True
            else:
                self._observe(*item, changed)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        for flight in landed:
            self._land(flight)
        if self.leadership is not None and (changed or not self._ready):
            self.leadership.publish(self.snapshot())
        if not self._ready and self._seen_jobs >= self._job_keys:
            self._ready = True
            if self.leadership is not None:
                self.leadership.changed()  # what the rounds before ready saw: leadership, state
            self.cycle()
            self.notifier.ready(self.status_line())
            return
        if coordination and self._ready and not self._stop.is_set():
            self._coordination_changed()
            return
        for service in sorted(changed):
            if self._ready and not self._stop.is_set():
                self.reconcile(service, trigger_at=changed[service])
        if changed or landed:
            self._write_health()

    def _observe(self, job: ProbeJob, result: ProbeResult, changed: dict[str, float]) -> None:
        if job.key not in self._job_keys:
            return  # a result from before a reload, for a probe that is gone
        self._seen_jobs.add(job.key)
        telemetry.record_probe(self.metrics, job, result)
        before, after = self.tracker.observe(job.service, job.instance, result, job.rise, job.fall)
        telemetry.record_health(self.metrics, job.service, after)
        if before.state is after.state:
            return
        if before.state is State.UNHEALTHY and after.state is State.HEALTHY:
            self.notifications.send(
                {
                    "event": "recovery",
                    "service": job.service,
                    "instance": job.instance,
                    "reason": after.reason,
                }
            )
        log.info(
            "health_changed service=%s instance=%s from=%s to=%s reason=%s",
            job.service,
            job.instance,
            before.state.value,
            after.state.value,
            after.reason,
        )
        changed.setdefault(job.service, result.observed_at + result.latency)

    def snapshot(self) -> HealthSnapshot:
        return self.tracker.snapshot(self.clock())

    # ------------------------------------------------------------------ several controllers

    def health(self, service: str) -> Mapping[str, InstanceHealth]:
        """What the policy decides from: this controller's view, or the sites' quorum."""
        own = self.tracker.instances(service)
        return own if self.leadership is None else self.leadership.health(service, own)

    def _coordination_changed(self) -> None:
        """Leadership or a site's report changed: the leader reconciles every service (a new
        leader moves each fence first)."""
        assert self.leadership is not None
        telemetry.record_coordination(self.metrics, self.leadership.view())
        if self.leadership.changed():
            self.cycle()
        else:
            self._write_health()

    def _quorum_health(self) -> dict[str, Mapping[str, InstanceHealth]] | None:
        if self.leadership is None:
            return None
        return {service: self.health(service) for service in self.runtime.config.services}

    def _may_write(self) -> bool:
        return self.leadership is None or self.leadership.may_write()

    def _fence(self, service: str) -> None:
        assert self.leadership is not None
        runtime = self.runtime
        settings = runtime.config.services[service]
        provider = runtime.provider_for(settings)
        report, work = self.leadership.fence_work(service, settings.name, provider)
        self._workers.submit(
            Flight(service, "fence", report, runtime, provider.change_timeout), work
        )

    def _fence_landed(self, report: Report) -> None:
        assert self.leadership is not None
        if self.leadership.fence_landed(report):
            self._retries.succeeded(report.service)
            self.reconcile(report.service)
        else:
            self._retries.failed(report.service, time.monotonic())

    # ------------------------------------------------------------------ deciding and writing

    def reconcile(self, service: str, trigger_at: float | None = None) -> Report | None:
        """Decide now; a change to write goes to a worker. None while one is in flight."""
        if self._workers.busy(service):
            return None  # its decisions wait for the outcome
        request = None
        if self.leadership is not None:
            gate = self.leadership.gate(service, self.reconciler.dry_run)
            if gate == "fence":
                self._fence(service)
            if gate != "write":
                return None  # following: the leader decides
            request = self.leadership.take_request(service)
        runtime = self.runtime
        settings = runtime.config.services[service]
        provider = runtime.provider_for(settings)
        manual = None
        if request is not None:
            manual = Decision(Kind.MOVE, None, request.to, "manual", request.reason)
        report = self.reconciler.prepare(
            service,
            settings,
            provider,
            self.health(service),  # this service only: a cycle reconciles all
            manual=manual,
            trigger_at=trigger_at,
            settle_until=self.settle_until.get(service, -math.inf),
        )
        if self.leadership is not None:
            report.site, report.fence = self.leadership.site, self.leadership.token
            report.request = request.id if request is not None else None
        if not report.wants_write:
            self._conclude(report)
            return report
        self._unconfirmed.pop(service, None)  # a new change supersedes an unconfirmed one
        flight = Flight(service, "write", report, runtime, provider.change_timeout)
        self._workers.submit(flight, lambda: self._execute(report, provider))
        return report

    def _execute(self, report: Report, provider: Any) -> Report:
        """On the worker: the write, unless this controller stopped leading meanwhile."""
        if not self._may_write():
            report.error = "not leading any more: change not written"
            report.pending = report.change
            return report
        return self.reconciler.execute(report, provider)

    def _land(self, flight: Flight) -> None:
        """A worker finished: take its outcome on the controller thread."""
        report: Report = flight.payload
        if flight.kind == "verify":
            self._checks.land(flight)
            self._close_retired()
            self._verified(report)
            return
        self._workers.land(flight)
        self._close_retired()
        if flight.kind == "fence":
            self._fence_landed(report)
            return
        if flight.kind == "confirm":
            self._confirmed(report)
            return
        self._conclude(report)
        self._verify(report)
        if report.applied and report.propagation is not None and not report.propagation.complete:
            self._unconfirmed[report.service] = report
            self._confirms.failed(report.service, time.monotonic())
        if report.conflict and not self._stop.is_set():
            count = self._conflicts.get(report.service, 0) + 1
            self._conflicts[report.service] = count
            if count <= MAX_CONFLICTS:  # re-read and re-decide now; after that, back off
                log.warning("conflict service=%s attempt=%d: re-reading", report.service, count)
                self.reconcile(report.service)
        else:
            self._conflicts.pop(report.service, None)

    def _conclude(self, report: Report) -> None:
        service = report.service
        self.reconciler.finish(report)
        if self.leadership is not None and report.fence is not None:
            self.leadership.share(report)
        self.last_reports[service] = report
        decision = report.decision
        if report.applied and decision is not None and decision.kind is Kind.MOVE:
            self.active[service] = decision.target
        elif decision is not None and not report.drift:
            self.active[service] = decision.current
        settings = self.runtime.config.services.get(service)
        if settings is not None and report.outcome == "applied":
            writes, propagations = self._measured.setdefault(service, ([], []))
            if report.write_seconds is not None and report.propagation is not None:
                writes.append(report.write_seconds)
                propagations.append(report.propagation.seconds)
                del writes[: -documents.RECENT_WRITES], propagations[: -documents.RECENT_WRITES]
            budget = convergence_budget(settings, writes, propagations)
            telemetry.record_budget(self.metrics, service, budget)
        if settings is not None:
            flips = self._flips_last_hour(service)
            telemetry.record_report(
                self.metrics,
                report,
                [i.name for i in settings.instances],
                self.active.get(service),
                report.health,
                flips,
            )
        self._schedule_retry(service, report)

    def _flips_last_hour(self, service: str) -> int:
        try:
            flips = self.store.load().flip_times(service)
        except StateError:
            return 0
        now = self.clock()
        return sum(1 for t in flips if now - t < 3600)

    def _schedule_retry(self, service: str, report: Report) -> None:
        """After a failed reconcile, wait tick, 2×tick, 4×tick … (at most MAX_BACKOFF)."""
        if report.error is None or report.conflict:
            self._retries.succeeded(service)
            return
        backoff = self._retries.failed(service, time.monotonic())
        log.warning(
            "retry_scheduled service=%s in=%.1fs pending=%s", service, backoff, report.pending
        )

    def _confirm_again(self, service: str) -> None:
        """Check an applied change that was not served everywhere yet (a zone file whose
        reload failed, a server that lagged): it is done only when it is served."""
        report = self._unconfirmed[service]
        settings = self.runtime.config.services.get(service)
        if settings is None:
            self._unconfirmed.pop(service)
            return
        provider = self.runtime.provider_for(settings)
        flight = Flight(service, "confirm", report, self.runtime, provider.change_timeout)
        self._workers.submit(flight, lambda: self.reconciler.confirm(report, provider))

    def _confirmed(self, report: Report) -> None:
        service = report.service
        complete = report.propagation is not None and report.propagation.complete
        self.reconciler.finish_confirmation(report)
        if complete:
            self._unconfirmed.pop(service, None)
            self._confirms.succeeded(service)
            self._verify(report)
        elif service in self._unconfirmed:
            self._confirms.failed(service, time.monotonic())

    def _verify(self, report: Report) -> None:
        """A flip served everywhere: check it as a client, on a worker of its own (the
        service's next decisions do not wait for it)."""
        settings = self.runtime.config.services.get(report.service)
        if settings is None or not settings.client_verify or not report.flipped:
            return
        if self._stop.is_set() or self._checks.busy(report.service):
            return
        assert report.plan is not None and report.plan.change is not None
        record = report.plan.change.after
        target = next(i for i in settings.instances if i.name == report.plan.decision.target)
        verifier = ClientVerifier(settings, settings.checks.connect_timeout)
        limit = verify_window(settings)

        def work() -> None:
            report.verification = verifier.verify(target, record, time.monotonic() + limit)

        flight = Flight(report.service, "verify", report, self.runtime, limit)
        self._checks.submit(flight, work)

    def _verified(self, report: Report) -> None:
        verification = report.verification
        if verification is None:
            return
        entry = self.reconciler.finish_verification(report)
        telemetry.record_verification(self.metrics, report)
        if not verification.ok:
            log.error(
                "client_verify_failed service=%s to=%s reason=%s",
                report.service,
                entry["to"],
                verification.reason,
            )
        else:
            log.info(
                "client_verified service=%s to=%s seconds=%.2f",
                report.service,
                entry["to"],
                verification.seconds,
            )

    def cycle(self) -> None:
        """Reconcile every service (one's failure never blocks another), then report."""
        now = time.monotonic()
        for service in self.runtime.config.services:
            if self._stop.is_set():
                return
            try:
                confirm_due = self._confirms.due(service, now)
                if service in self._unconfirmed and confirm_due and not self._workers.busy(service):
                    self._confirm_again(service)
                if not self._retries.due(service, now):
                    continue  # backing off after a failure: no retry storm
                self.reconcile(service)
            except Exception:  # a bug in one service's cycle must not stop the others
                log.exception("cycle_crashed service=%s", service)
        self._tell_unsettled()
        if self.leadership is not None:
            telemetry.record_coordination(self.metrics, self.leadership.view())
        self._write_health()
        self.metrics.last_cycle.set(self.clock())
        self.notifier.status(self.status_line())
        self.notifier.watchdog()
        self._last_beat = time.monotonic()

    def _tell_unsettled(self) -> None:
        """Once per settle window: instances still UNKNOWN after it go to the log and audit."""
        now = self.clock()
        for service, until in self.settle_until.items():
            if now < until:
                continue
            for name, health in self.tracker.instances(service).items():
                if health.state is not State.UNKNOWN or (service, name) in self._unsettled_told:
                    continue
                self._unsettled_told.add((service, name))
                log.warning(
                    "unsettled service=%s instance=%s reason=%s", service, name, health.reason
                )
                entry = {
                    "service": service,
                    "event": "unsettled",
                    "instance": name,
                    "reason": health.reason,
                }
                try:
                    self.store.audit(entry)
                except DnsFailoverError as e:
                    log.error("audit_failed service=%s error=%s", service, e)

    # ------------------------------------------------------------------ status

    def status_line(self) -> str:
        parts = []
        for service in self.runtime.config.services:
            report = self.last_reports.get(service)
            note = f" ({report.event})" if report and report.event not in ("keep", "none") else ""
            if self._workers.busy(service):
                note += " (writing)"
            parts.append(f"{service}→{self.active.get(service) or '?'}{note}")
        return ", ".join(parts)

    def writing(self) -> dict[str, dict[str, Any]]:
        """Changes in flight and changes not yet confirmed, per service (for health.json)."""
        now = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        for service, report in self._unconfirmed.items():
            propagation = report.propagation.summary() if report.propagation else None
            found[service] = {
                "kind": "unconfirmed",
                "change": report.change,
                "propagation": propagation,
            }
        for flight in self._workers.flights():
            report = flight.payload
            found[flight.service] = {
                "kind": flight.kind,
                "change": report.change,
                "seconds": round(flight.age(now), 1),
                "timeout": flight.timeout,
                "overdue": flight.overdue(now),
            }
        for service in self.runtime.config.services:
            entry = found.get(service, {})
            self.metrics.in_flight.labels(service).set(entry.get("seconds", 0.0))
            self.metrics.overdue.labels(service).set(bool(entry.get("overdue")))
            self.metrics.unconfirmed.labels(service).set(service in self._unconfirmed)
        return found

    def _write_health(self) -> None:
        document = documents.health_document(
            self.snapshot(),
            self.active,
            self.last_reports,
            self.writing(),
            self.settle_until,
            self.leadership.status() if self.leadership is not None else None,
            self._quorum_health(),
        )
        try:
            self.store.save_health(document)
        except StateError as e:
            log.error("health_not_saved error=%s", e)

    # ------------------------------------------------------------------ reload

    def _do_reload(self) -> None:
        self._reload = False
        self.notifier.reloading()
        log.info("reload_started path=%s", self.config_path)
        try:
            loaded = load_config(self.config_path)
            runtime = Runtime.build(loaded.config, self.clock)
        except DnsFailoverError as e:
            log.error("reload_failed: keeping the running config: %s", str(e).replace("\n", "; "))
            self.metrics.reloads.labels("failed").inc()
            self.notifier.ready(self.status_line())
            return
        if loaded.config.coordination != self.runtime.config.coordination:
            log.warning("reload: the coordination section changes only at restart; keeping it")
        if loaded.config.state_dir != self.runtime.config.state_dir:
            log.warning(
                "reload: state_dir changes only at restart; keeping %s", self.store.directory
            )
        self._stop_probes()
        self._retired.append(self.runtime)  # its writes in flight finish against it
        self.runtime = runtime
        self._close_retired()
        self._register(runtime)
        self._retries.first = self._confirms.first = self.tick
        self.notifications.close()
        self.notifications = self._notifications()
        self.reconciler = self._reconciler()
        self._start_probes()
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reload_done services=%d probes=%d", len(runtime.config.services), len(runtime.jobs)
        )
        self.notifier.ready(self.status_line())

    def _close_retired(self) -> None:
        busy = {id(f.owner) for f in (*self._workers.flights(), *self._checks.flights())}
        for old in [r for r in self._retired if id(r) not in busy]:
            old.close()
            self._retired.remove(old)
