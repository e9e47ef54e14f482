"""Prometheus metrics on an explicit registry, served on `metrics_listen` when it is set.

Names follow Prometheus conventions: base units (`_seconds`), `_total` for counters, labels for
service, instance and check. The controller records into a `Metrics`; nothing else does.
Imports nothing from the package: controller/telemetry.py fills the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

STATES = ("healthy", "unhealthy", "unknown")
DNS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        svc_inst_check = ["service", "instance", "check"]
        self.probes = Counter(
            "dnsfailover_probes_total",
            "Probe results by outcome.",
            [*svc_inst_check, "outcome"],
            registry=r,
        )
        self.probe_latency = Histogram(
            "dnsfailover_probe_duration_seconds", "Whole-probe latency.", svc_inst_check, registry=r
        )
        self.instance_state = Gauge(
            "dnsfailover_instance_state",
            "1 for the instance's current health state.",
            ["service", "instance", "state"],
            registry=r,
        )
        self.healthy_instances = Gauge(
            "dnsfailover_service_healthy_instances",
            "Healthy instances per service.",
            ["service"],
            registry=r,
        )
        self.active = Gauge(
            "dnsfailover_active_instance",
            "1 for the instance the service's record points at.",
            ["service", "instance"],
            registry=r,
        )
        self.failovers = Counter(
            "dnsfailover_failovers_total",
            "DNS changes applied, by rule (failover, failback, drain, pin, manual, create).",
            ["service", "reason"],
            registry=r,
        )
        self.refusals = Counter(
            "dnsfailover_refused_decisions_total",
            "Wanted changes refused by a safety rule, or alarms.",
            ["service", "reason"],
            registry=r,
        )
        self.conflicts = Counter(
            "dnsfailover_cas_conflicts_total",
            "Compare-and-swap conflicts.",
            ["service"],
            registry=r,
        )
        self.errors = Counter(
            "dnsfailover_reconcile_errors_total",
            "Reconciles that failed (provider or state errors).",
            ["service"],
            registry=r,
        )
        self.pending = Gauge(
            "dnsfailover_pending_change",
            "1 while a wanted DNS change could not be written.",
            ["service"],
            registry=r,
        )
        self.unsettled = Gauge(
            "dnsfailover_instance_unsettled_seconds",
            "How long an instance has had results without settling (UNKNOWN); 0 once settled.",
            ["service", "instance"],
            registry=r,
        )
        self.flips_last_hour = Gauge(
            "dnsfailover_flips_last_hour",
            "DNS changes of the service in the last hour (compare with max_flips_per_hour).",
            ["service"],
            registry=r,
        )
        self.in_flight = Gauge(
            "dnsfailover_change_in_flight_seconds",
            "Age of the service's DNS change being written and confirmed; 0 when none.",
            ["service"],
            registry=r,
        )
        self.overdue = Gauge(
            "dnsfailover_change_overdue",
            "1 while the service's change has been in flight longer than its timeout.",
            ["service"],
            registry=r,
        )
        self.unconfirmed = Gauge(
            "dnsfailover_change_unconfirmed",
            "1 while a written change is not yet served by every server that answers clients.",
            ["service"],
            registry=r,
        )
        self.budget = Gauge(
            "dnsfailover_convergence_budget_seconds",
            "Instance failure to every client moved: detection, write, propagation (p95), "
            "client TTL, and their total.",
            ["service", "part"],
            registry=r,
        )
        self.client_verify_seconds = Histogram(
            "dnsfailover_client_verify_seconds",
            "After a flip is served everywhere: until the new target answers for the public "
            "name as a client resolves and reaches it.",
            ["service"],
            buckets=DNS_BUCKETS,
            registry=r,
        )
        self.client_verifications = Counter(
            "dnsfailover_client_verifications_total",
            "Flips verified as a client would, by outcome (ok, failed).",
            ["service", "outcome"],
            registry=r,
        )
        self.drift = Gauge(
            "dnsfailover_drift",
            "1 while the record holds a value that is no instance's (left alone unless adopt).",
            ["service"],
            registry=r,
        )
        self.write_seconds = Histogram(
            "dnsfailover_dns_write_duration_seconds",
            "Compare-and-swap write, acknowledged.",
            ["service"],
            buckets=DNS_BUCKETS,
            registry=r,
        )
        self.propagation_seconds = Histogram(
            "dnsfailover_dns_propagation_duration_seconds",
            "Write to every authoritative server serving it.",
            ["service"],
            buckets=DNS_BUCKETS,
            registry=r,
        )
        self.runway = Gauge(
            "dnsfailover_revocation_runway_seconds",
            "Time until the freshest OCSP response or CRL expires.",
            svc_inst_check,
            registry=r,
        )
        self.tls_expiry = Gauge(
            "dnsfailover_tls_certificate_expiry_seconds",
            "Time until the instance's TLS certificate expires.",
            ["service", "instance"],
            registry=r,
        )
        self.last_cycle = Gauge(
            "dnsfailover_last_cycle_timestamp_seconds",
            "When the last full reconcile cycle completed.",
            registry=r,
        )
        self.reloads = Counter(
            "dnsfailover_config_reloads_total", "Config reloads by result.", ["result"], registry=r
        )
        self.notifications_failed = Counter(
            "dnsfailover_notifications_failed_total",
            "Hooks that failed or timed out.",
            ["kind"],
            registry=r,
        )
        # Several controllers (coordination): absent in single-controller mode.
        self.leader = Gauge(
            "dnsfailover_coordination_leader",
            "1 while this controller leads (holds the leader key with a live lease).",
            ["site"],
            registry=r,
        )
        self.may_write = Gauge(
            "dnsfailover_coordination_writing_allowed",
            "1 while this controller may write DNS (leading, and renewed within the deadline).",
            ["site"],
            registry=r,
        )
        self.etcd_up = Gauge(
            "dnsfailover_coordination_etcd_up",
            "1 when the last coordination round reached etcd.",
            ["site"],
            registry=r,
        )
        self.sites_reporting = Gauge(
            "dnsfailover_coordination_sites_reporting",
            "Sites whose report is live in etcd, as this controller saw at its last round.",
            ["site"],
            registry=r,
        )
        self.fence_token = Gauge(
            "dnsfailover_coordination_token",
            "The leader key's revision (fencing token) this controller saw last.",
            ["site"],
            registry=r,
        )
        self.dns_reachable = Gauge(
            "dnsfailover_coordination_dns_reachable",
            "1 while this controller can reach its DNS service (its reads and writes have not "
            "failed for handover_after): it could do the leader's job.",
            ["site"],
            registry=r,
        )
        self.report_age = Gauge(
            "dnsfailover_coordination_report_age_seconds",
            "Seconds since the reporter's probing heartbeat last advanced, by this controller's "
            "clock (older than 3 check intervals: stale, it does not count; 1e9: no report).",
            ["site", "reporter"],
            registry=r,
        )
        self.quorum_held = Gauge(
            "dnsfailover_quorum_held",
            "1 while the sites' quorum holds an instance's verdict: they split, or too few "
            "fresh sites report it (the active keeps the name).",
            ["service", "instance", "verdict"],
            registry=r,
        )
        for result in ("ok", "failed"):
            self.reloads.labels(result)
        self._server: Any = None

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server, _thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )
        log.info("metrics_listening address=%s", listen)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def set_state(self, service: str, instance: str, state: str) -> None:
        for candidate in STATES:
            self.instance_state.labels(service, instance, candidate).set(candidate == state)

    def set_active(self, service: str, instances: list[str], active: str | None) -> None:
        for name in instances:
            self.active.labels(service, name).set(name == active)
