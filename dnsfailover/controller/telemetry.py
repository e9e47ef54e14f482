"""Metrics from what the controller saw: probe results, health, and the changes' reports.

`metrics.py` owns the metric definitions and knows nothing of the controller's values; this
module turns those values into samples, and keeps the recent write and propagation times each
service's convergence budget is computed from. Imports values and the metrics; does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from dnsfailover.config.models import Service
from dnsfailover.controller.journal import RECENT_WRITES
from dnsfailover.controller.practice import Outcome, Run
from dnsfailover.controller.report import Report
from dnsfailover.controller.runtime import ProbeJob
from dnsfailover.coordination.coordinator import View
from dnsfailover.health import InstanceHealth, State
from dnsfailover.health.quorum import QuorumHealth
from dnsfailover.metrics import Metrics
from dnsfailover.plan.budget import Budget, convergence_budget
from dnsfailover.results import ProbeResult


def init_service(
    metrics: Metrics, service: str, health: Mapping[str, InstanceHealth], new: bool
) -> None:
    """Create every per-service series, so that rules and dashboards see them from the first
    scrape instead of only after the first error, conflict or refusal. Health is the tracker's
    (it carries over a reload); the active instance is unknown only for a new service."""
    m = metrics
    for counter in (m.conflicts, m.errors):
        counter.labels(service)
    for gauge in (m.pending, m.drift, m.flips_last_hour, m.in_flight, m.overdue, m.unconfirmed):
        gauge.labels(service).set(0)
    m.failovers.labels(service, "failover")
    for outcome in ("ok", "failed"):
        m.client_verifications.labels(service, outcome)
    m.refusals.labels(service, "all_down")
    for instance in health.values():
        record_health(m, service, instance)
    if new:
        m.set_active(service, list(health), None)
    for kind in ("exec", "webhook", "dropped"):
        m.notifications_failed.labels(kind)


def init_practice(
    metrics: Metrics, service: str, settings: Service, last_success: float, on: bool
) -> None:
    m = metrics
    for outcome in Outcome:
        if outcome is not Outcome.PENDING:
            m.practice_runs.labels(service, outcome.value)
    m.practice_in_progress.labels(service).set(on)
    m.practice_last_success.labels(service).set(last_success)
    every = settings.practice.every if settings.practice is not None else None
    m.practice_schedule.labels(service).set(every or 0)


def record_practice(metrics: Metrics, service: str, run: Run, on_now: bool) -> None:
    """A run's progress; `on_now`: the service has a run on (a refused one may be another)."""
    m = metrics
    m.practice_in_progress.labels(service).set(on_now)
    if run.on or run.outcome is Outcome.PENDING:
        return
    m.practice_runs.labels(service, run.outcome.value).inc()
    if run.outcome is Outcome.SUCCEEDED and run.ended_at is not None:
        m.practice_last_success.labels(service).set(run.ended_at)


def record_verification(metrics: Metrics, report: Report) -> None:
    verification = report.verification
    assert verification is not None
    outcome = "ok" if verification.ok else "failed"
    metrics.client_verifications.labels(report.service, outcome).inc()
    metrics.client_verify_seconds.labels(report.service).observe(verification.seconds)


def record_budget(metrics: Metrics, service: str, budget: Budget) -> None:
    for part, seconds in budget.parts().items():
        metrics.budget.labels(service, part).set(seconds)


def record_probe(metrics: Metrics, job: ProbeJob, result: ProbeResult) -> None:
    m = metrics
    m.probes.labels(job.service, job.instance, result.check, result.outcome.value).inc()
    m.probe_latency.labels(job.service, job.instance, result.check).observe(result.latency)
    if result.runway is not None:
        m.runway.labels(job.service, job.instance, result.check).set(result.runway)
    if result.tls_days_left is not None:
        m.tls_expiry.labels(job.service, job.instance).set(result.tls_days_left * 86400)


def record_health(metrics: Metrics, service: str, health: InstanceHealth) -> None:
    metrics.set_state(service, health.name, health.state.value)
    metrics.unsettled.labels(service, health.name).set(health.unsettled_for or 0.0)


def record_report(
    metrics: Metrics,
    report: Report,
    instances: Iterable[str],
    active: str | None,
    health: Mapping[str, InstanceHealth],
    flips_last_hour: int,
) -> None:
    m, service, decision = metrics, report.service, report.decision
    m.set_active(service, list(instances), active)
    m.healthy_instances.labels(service).set(
        sum(1 for h in health.values() if h.state is State.HEALTHY)
    )
    m.flips_last_hour.labels(service).set(flips_last_hour)
    if report.applied and decision is not None and report.event != "ttl":
        m.failovers.labels(service, decision.rule).inc()
    m.conflicts.labels(service).inc(report.conflicts)
    if report.error is not None:
        m.errors.labels(service).inc()
    m.pending.labels(service).set(report.pending is not None)
    m.drift.labels(service).set(report.drift)
    if report.write_seconds is not None:
        m.write_seconds.labels(service).observe(report.write_seconds)
    if report.propagation is not None:
        m.propagation_seconds.labels(service).observe(report.propagation.seconds)


def record_coordination(metrics: Metrics, view: View, status: Mapping[str, Any]) -> None:
    """Leadership, etcd's reachability, the sites reporting, fresh and able to reach DNS, as
    this controller sees them (`status`: Leadership.status())."""
    site = view.site
    metrics.leader.labels(site).set(view.leading)
    metrics.may_write.labels(site).set(view.may_write(time.monotonic()))
    metrics.etcd_up.labels(site).set(view.etcd_ok)
    metrics.sites_reporting.labels(site).set(len(view.reports))
    metrics.fence_token.labels(site).set(view.token or 0)
    metrics.dns_reachable.labels(site).set(status["dns"]["reachable"])
    metrics.report_age.labels(site, site).set(status["probing_age"])
    for other, seen in status["others"].items():
        age = seen.get("report_age")
        metrics.report_age.labels(site, other).set(age if age is not None else 1e9)


def record_quorum(metrics: Metrics, service: str, health: Mapping[str, InstanceHealth]) -> None:
    """Which instances the sites' quorum holds (split, or too few fresh verdicts)."""
    for name, h in health.items():
        verdict = h.verdict.value if isinstance(h, QuorumHealth) else ""
        for kind in ("split", "unknown"):
            metrics.quorum_held.labels(service, name, kind).set(h.held and verdict == kind)


def record_writing(metrics: Metrics, services: Iterable[str], writing: Mapping[str, Any]) -> None:
    """Each service's change in flight (seconds, overdue) or unconfirmed."""
    for service in services:
        entry = writing.get(service, {})
        metrics.in_flight.labels(service).set(entry.get("seconds", 0.0))
        metrics.overdue.labels(service).set(bool(entry.get("overdue")))
        metrics.unconfirmed.labels(service).set(entry.get("kind") == "unconfirmed")


class Outcomes:
    """Each concluded change into the metrics, and the convergence budget it implies."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.measured: dict[str, tuple[list[float], list[float]]] = {}  # writes, propagations

    def start(self, key: str, service: Service, measured: tuple[list[float], list[float]]) -> None:
        """A service at start or reload: what the audit log remembers of its writes."""
        self.measured.setdefault(key, measured)
        record_budget(self.metrics, key, convergence_budget(service, *self.measured[key]))

    def concluded(
        self, report: Report, service: Service, active: str | None, flips_last_hour: int
    ) -> None:
        key = report.service
        if report.outcome == "applied":
            writes, propagations = self.measured.setdefault(key, ([], []))
            if report.write_seconds is not None and report.propagation is not None:
                writes.append(report.write_seconds)
                propagations.append(report.propagation.seconds)
                del writes[:-RECENT_WRITES], propagations[:-RECENT_WRITES]
            budget = convergence_budget(service, writes, propagations)
            record_budget(self.metrics, key, budget)
        names = [i.name for i in service.instances]
        record_report(self.metrics, report, names, active, report.health, flips_last_hour)
