"""Prometheus metrics on an explicit registry, served on `metrics_listen` when it is set.

Names follow Prometheus conventions: base units (`_seconds`), `_total` for counters, labels for
service, instance and check. The controller records into a `Metrics`; nothing else does.
Imports nothing from the package: controller/telemetry.py fills the metrics.

The HTTP server is bounded (issue 21): an idle connection costs a socket in one selector, not
a thread; a connection is handed to a small pool only once its request arrives, and has a
whole-request deadline there; idle connections past a cap or a timeout are closed. So a
flood of idle connections cannot grow the daemon's threads, and a scrape still answers.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import MetricsHandler

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
        self.practice_runs = Counter(
            "dnsfailover_practice_runs_total",
            "Practice runs ended, by outcome (SUCCEEDED, FAILED, INTERRUPTED, CANCELLED, REFUSED).",
            ["service", "outcome"],
            registry=r,
        )
        self.practice_in_progress = Gauge(
            "dnsfailover_practice_in_progress",
            "1 while a practice run is on.",
            ["service"],
            registry=r,
        )
        self.practice_last_success = Gauge(
            "dnsfailover_practice_last_success_timestamp_seconds",
            "When the last SUCCEEDED practice run ended (the daemon's start if none did yet).",
            ["service"],
            registry=r,
        )
        self.practice_schedule = Gauge(
            "dnsfailover_practice_schedule_seconds",
            "The service's practice schedule (`practice.every`); 0 when none is set.",
            ["service"],
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
        self._server = MetricsServer((host.strip("[]"), int(port)), self.registry)
        log.info("metrics_listening address=%s", listen)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def set_state(self, service: str, instance: str, state: str) -> None:
        for candidate in STATES:
            self.instance_state.labels(service, instance, candidate).set(candidate == state)

    def set_active(self, service: str, instances: list[str], active: str | None) -> None:
        for name in instances:
            self.active.labels(service, name).set(name == active)


class MetricsServer:
    """Serves the registry over HTTP with a bounded number of threads: one for the selector,
    `workers` for requests. At most `max_idle` connections wait for their request, each at
    most `idle_timeout` seconds (the oldest is closed first); a request being served has
    `request_timeout` per socket operation; beyond `workers` × 4 queued ones, new ones are
    closed."""

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        workers: int = 2,
        max_idle: int = 64,
        idle_timeout: float = 10.0,
        request_timeout: float = 5.0,
    ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:  # not socket.create_server: its OSError buries the cause in a longer strerror
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(128)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.address = self._listener.getsockname()[:2]
        self._handler = MetricsHandler.factory(registry)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="metrics")
        self._slots = threading.BoundedSemaphore(workers * 4)
        self._max_idle, self._idle_timeout = max_idle, idle_timeout
        self._request_timeout = request_timeout
        self._idle: dict[socket.socket, float] = {}  # connection → when it was accepted
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-http", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._ready(key.fileobj)  # type: ignore[arg-type]
            self._expire(time.monotonic() - self._idle_timeout)

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        if len(self._idle) >= self._max_idle:
            self._drop(next(iter(self._idle)))  # the oldest idle connection makes room
        self._idle[conn] = time.monotonic()
        self._selector.register(conn, selectors.EVENT_READ)

    def _ready(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._idle[conn]
        if not self._slots.acquire(blocking=False):
            conn.close()  # every worker busy and the queue full: shed the request
            return
        self._pool.submit(self._handle, conn)

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(self._request_timeout)
            self._handler(conn, conn.getpeername(), self)
        except Exception as e:  # a client that resets or stalls is its own problem
            log.debug("metrics_request_failed error=%s", type(e).__name__)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._slots.release()

    def _expire(self, before: float) -> None:
        for conn, since in list(self._idle.items()):
            if since < before:
                self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._idle[conn]
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in list(self._idle):
            self._drop(conn)
        self._selector.close()
        self._listener.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
