"""The daemon: probes on a schedule, one controller thread that owns every decision.

APScheduler runs each probe once at start, then on its interval at its own phase (probes are
spread over the interval, never two runs of one probe at once) on a bounded thread pool;
results go into one queue. The controller thread (the main
thread) takes them in order, feeds the health tracker, and reconciles a service at once when
one of its instances changes state, and every `tick` otherwise (to honour pins and drains set
from the CLI, and to retry a failed write). Signal handlers only set flags: SIGTERM/SIGINT stop
after the write in flight; SIGHUP reloads — the new config is validated and built in full
before it replaces the old one, and health carries over. systemd is told READY once the
first probe round is in, WATCHDOG only after a completed cycle.
"""

from __future__ import annotations

import logging
import queue
import random
import signal
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from dnsfailover.config import load_config
from dnsfailover.controller.reconcile import Reconciler, Report
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import DnsFailoverError, StateError
from dnsfailover.health import HealthSnapshot, HealthTracker, State
from dnsfailover.metrics import Metrics
from dnsfailover.notify import Notifications
from dnsfailover.probes import ProbeResult
from dnsfailover.systemd import Notifier

log = logging.getLogger(__name__)

MAX_PROBE_THREADS = 64
MAX_BACKOFF = 30.0  # the longest wait before retrying a service whose reconcile failed


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
        self.results: queue.Queue[tuple[ProbeJob, ProbeResult] | None] = queue.Queue()
        self.active: dict[str, str | None] = {}
        self.last_reports: dict[str, Report] = {}
        self._stop = threading.Event()
        self._reload = False
        self._scheduler: BackgroundScheduler | None = None
        self._seen_jobs: set[str] = set()
        self._retry_at: dict[str, float] = {}  # service → monotonic time of the next try
        self._backoff: dict[str, float] = {}
        self._job_keys: set[str] = set()
        self._probe_locks: dict[str, threading.Lock] = {}  # one run of a probe at a time
        self._ready = False
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

    # ------------------------------------------------------------------ probes

    def _register(self, runtime: Runtime) -> None:
        """Track the runtime's checks; health of checks that stay carries over a reload."""
        for job in runtime.jobs:
            self.tracker.register(job.service, job.instance, job.probe.check, job.probe.required)
        self.tracker.keep_only({(j.service, j.instance, j.probe.check) for j in runtime.jobs})
        self._job_keys = {j.key for j in runtime.jobs}

    def _probe(self, job: ProbeJob) -> None:
        """Runs on a scheduler thread: probe, hand the result to the controller thread.

        A probe never runs twice at once. A run that finds the last one still going (a
        target that hangs until the deadline, when the timeout is as long as the interval)
        waits for it, up to one timeout, and then starts at once: skipping it would delay
        detecting a hung instance by a whole interval."""
        lock = self._probe_locks.setdefault(job.key, threading.Lock())
        if not lock.acquire(timeout=job.timeout):
            log.warning("probe_skipped job=%s: the last run has not ended", job.key)
            return
        try:
            result = job.probe.run(time.monotonic() + job.timeout)
        except Exception:  # a probe bug must not kill its schedule
            log.exception("probe_crashed job=%s", job.key)
            return
        finally:
            lock.release()
        self.results.put((job, result))

    def _start_scheduler(self) -> None:
        workers = max(4, min(MAX_PROBE_THREADS, len(self.runtime.jobs)))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            # Two instances of a job may be started; _probe makes the second wait for the first.
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": None},
        )
        now = time.time()
        for job in self.runtime.jobs:
            # Every probe runs once at start (READY waits for that round). After that each one
            # keeps its own phase, spread evenly over the interval by a hash of its key (as
            # Prometheus spreads scrapes): a thousand probes never start in the same second.
            first = now + random.uniform(0, min(job.interval, 1.0) * 0.2)
            phase = zlib.crc32(job.key.encode()) / 2**32 * job.interval
            scheduler.add_job(
                self._probe, "date", run_date=_datetime(first), args=[job], id=job.key + "#first"
            )
            scheduler.add_job(
                self._probe,
                IntervalTrigger(
                    seconds=job.interval, start_date=_datetime(first + job.timeout + phase)
                ),
                args=[job],
                id=job.key,
            )
        scheduler.start()
        self._scheduler = scheduler

    def _stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    # ------------------------------------------------------------------ signals

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
        self.results.put(None)

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self.results.put(None)

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
        self._check_state_directory()
        self.install_signal_handlers()
        if self.runtime.config.metrics_listen:
            self.metrics.serve(self.runtime.config.metrics_listen)
        self._start_scheduler()
        log.info(
            "started services=%d probes=%d dry_run=%s",
            len(self.runtime.config.services),
            len(self.runtime.jobs),
            self.reconciler.dry_run,
        )
        next_tick = time.monotonic() + self.tick
        try:
            while not self._stop.is_set():
                self._drain_results(timeout=max(0.0, next_tick - time.monotonic()))
                if self._reload:
                    self._do_reload()
                if self._stop.is_set():
                    break
                if time.monotonic() >= next_tick:
                    self.cycle()
                    next_tick = time.monotonic() + self.tick
        finally:
            self.notifier.stopping()
            self._stop_scheduler()
            self.notifications.close()
            self.metrics.close()
            self.runtime.close()
            self.store.release_daemon()
            log.info("stopped")
        return 0

    def _check_state_directory(self) -> None:
        """Start-up hygiene after a crash: stale temp files, a torn last audit line."""
        for name in self.store.clean_leftovers():
            log.warning("state_leftover_removed file=%s", name)
        self.store.load()  # a corrupt state file stops the daemon here, before any DNS change
        _, problems = self.store.read_audit()
        for problem in problems:
            log.warning("audit_torn_line %s", problem)

    def _drain_results(self, timeout: float) -> None:
        try:
            item = self.results.get(timeout=timeout)
        except queue.Empty:
            return
        changed: dict[str, float] = {}  # service → when its first health-changing result finished
        while item is not None:
            job, result = item
            self._observe(job, result, changed)
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                break
        if not self._ready and self._seen_jobs >= self._job_keys:
            self._ready = True
            self.cycle()
            self.notifier.ready(self.status_line())
            return
        for service in sorted(changed):
            if self._ready and not self._stop.is_set():
                self.reconcile(service, trigger_at=changed[service])
        if changed:
            self._write_health()

    def _observe(self, job: ProbeJob, result: ProbeResult, changed: dict[str, float]) -> None:
        if job.key not in self._job_keys:
            return  # a result from before a reload, for a probe that is gone
        self._seen_jobs.add(job.key)
        self._record_probe(job, result)
        before, after = self.tracker.observe(job.service, job.instance, result, job.rise, job.fall)
        if before.state is not after.state:
            self.metrics.set_state(job.service, job.instance, after.state.value)
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

    def reconcile(self, service: str, trigger_at: float | None = None) -> Report:
        health = self.tracker.instances(service)  # this service only: a cycle reconciles all
        settings = self.runtime.config.services[service]
        report = self.reconciler.reconcile(
            service,
            settings,
            self.runtime.provider_for(settings),
            health,
            trigger_at=trigger_at,
        )
        self.last_reports[service] = report
        decision = report.decision
        if report.applied and decision is not None:
            self.active[service] = decision.target
        elif decision is not None and not report.drift:
            self.active[service] = decision.current
        self._record_report(report, [i.name for i in settings.instances], health)
        self._schedule_retry(service, report)
        return report

    def _schedule_retry(self, service: str, report: Report) -> None:
        """After a failed reconcile, wait tick, 2×tick, 4×tick … (at most MAX_BACKOFF)."""
        if report.error is None:
            self._backoff.pop(service, None)
            self._retry_at.pop(service, None)
            return
        backoff = min(max(self.tick, self._backoff.get(service, self.tick / 2) * 2), MAX_BACKOFF)
        self._backoff[service] = backoff
        self._retry_at[service] = time.monotonic() + backoff
        log.warning(
            "retry_scheduled service=%s in=%.1fs pending=%s", service, backoff, report.pending
        )

    def _record_probe(self, job: ProbeJob, result: ProbeResult) -> None:
        m = self.metrics
        m.probes.labels(job.service, job.instance, result.check, result.outcome.value).inc()
        m.probe_latency.labels(job.service, job.instance, result.check).observe(result.latency)
        if result.runway is not None:
            m.runway.labels(job.service, job.instance, result.check).set(result.runway)
        if result.tls_days_left is not None:
            m.tls_expiry.labels(job.service, job.instance).set(result.tls_days_left * 86400)

    def _record_report(self, report: Report, instances: list[str], health: Any) -> None:
        m, service, decision = self.metrics, report.service, report.decision
        m.set_active(service, instances, self.active.get(service))
        m.healthy_instances.labels(service).set(
            sum(1 for h in health.values() if h.state is State.HEALTHY)
        )
        if report.applied and decision is not None:
            m.failovers.labels(service, decision.rule).inc()
        m.conflicts.labels(service).inc(report.conflicts)
        if report.error is not None:
            m.errors.labels(service).inc()
        m.pending.labels(service).set(report.pending is not None)
        if report.write_seconds is not None:
            m.write_seconds.labels(service).observe(report.write_seconds)
        if report.propagation is not None:
            m.propagation_seconds.labels(service).observe(report.propagation.seconds)

    def cycle(self) -> None:
        """Reconcile every service (one's failure never blocks another), then report."""
        for service in self.runtime.config.services:
            if self._stop.is_set():
                return
            if time.monotonic() < self._retry_at.get(service, 0.0):
                continue  # backing off after a failure: no retry storm
            try:
                self.reconcile(service)
            except Exception:  # a bug in one service's cycle must not stop the others
                log.exception("cycle_crashed service=%s", service)
        self._write_health()
        self.metrics.last_cycle.set(self.clock())
        self.notifier.status(self.status_line())
        self.notifier.watchdog()

    def status_line(self) -> str:
        parts = []
        for service in self.runtime.config.services:
            report = self.last_reports.get(service)
            note = f" ({report.event})" if report and report.event not in ("keep", "none") else ""
            parts.append(f"{service}→{self.active.get(service) or '?'}{note}")
        return ", ".join(parts)

    def _write_health(self) -> None:
        try:
            self.store.save_health(self.health_document())
        except StateError as e:
            log.error("health_not_saved error=%s", e)

    def health_document(self) -> dict[str, Any]:
        snapshot = self.snapshot()
        services: dict[str, Any] = {}
        for key, instances in snapshot.services.items():
            report = self.last_reports.get(key)
            services[key] = {
                "active": self.active.get(key),
                "last": None
                if report is None
                else {
                    "event": report.event,
                    "reason": report.decision.reason if report.decision else None,
                    "error": report.error,
                    "change": report.change,
                    "pending": report.pending,
                },
                "instances": {
                    name: {
                        "state": h.state.value,
                        "since": h.since,
                        "reason": h.reason,
                        "checks": {
                            c: {
                                "state": ch.state.value,
                                "reason": ch.reason,
                                "result": ch.last.as_dict() if ch.last else None,
                            }
                            for c, ch in h.checks.items()
                        },
                    }
                    for name, h in instances.items()
                },
            }
        return {"updated": snapshot.at, "services": services}

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
        if loaded.config.state_dir != self.runtime.config.state_dir:
            log.warning(
                "reload: state_dir changes only at restart; keeping %s", self.store.directory
            )
        self._stop_scheduler()
        old, self.runtime = self.runtime, runtime
        old.close()
        self._register(runtime)
        self.notifications.close()
        self.notifications = self._notifications()
        self.reconciler = self._reconciler()
        self._start_scheduler()
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reload_done services=%d probes=%d", len(runtime.config.services), len(runtime.jobs)
        )
        self.notifier.ready(self.status_line())


def _datetime(epoch: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def run_once(runtime: Runtime, store: StateStore, dry_run: bool) -> list[Report]:
    """`run --once`: one probe round, one reconcile of every service."""
    from dnsfailover.controller.oneshot import one_round_health, probe_once

    health = one_round_health(probe_once(runtime.jobs))
    reconciler = Reconciler(store, dry_run=dry_run or runtime.config.dry_run)
    reports = []
    for key, service in runtime.config.services.items():
        reports.append(
            reconciler.reconcile(key, service, runtime.provider_for(service), health.get(key, {}))
        )
    return reports
