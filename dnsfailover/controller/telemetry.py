"""Metrics from what the controller saw: probe results, health, and reconcile reports.

`metrics.py` owns the metric definitions and knows nothing of the controller's values; this
module turns those values into samples. Imports the controller's values and metrics only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dnsfailover.controller.reconcile import Report
from dnsfailover.controller.runtime import ProbeJob
from dnsfailover.health import InstanceHealth, State
from dnsfailover.metrics import Metrics
from dnsfailover.results import ProbeResult


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
