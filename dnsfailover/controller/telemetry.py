"""Metrics from what the controller saw: probe results, health, and reconcile reports.

`metrics.py` owns the metric definitions and knows nothing of the controller's values; this
module turns those values into samples. Imports values and the metrics; does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from dnsfailover.controller.reconcile import Report
from dnsfailover.controller.runtime import ProbeJob
from dnsfailover.coordination.coordinator import View
from dnsfailover.health import InstanceHealth, State
from dnsfailover.metrics import Metrics
from dnsfailover.plan.budget import Budget
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


def record_coordination(metrics: Metrics, view: View) -> None:
    """Leadership, etcd's reachability and the sites reporting, as this controller sees them."""
    site = view.site
    metrics.leader.labels(site).set(view.leading)
    metrics.may_write.labels(site).set(view.may_write(time.monotonic()))
    metrics.etcd_up.labels(site).set(view.etcd_ok)
    metrics.sites_reporting.labels(site).set(len(view.reports))
    metrics.fence_token.labels(site).set(view.token or 0)
