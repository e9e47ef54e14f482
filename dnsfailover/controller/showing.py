"""What the daemon shows of itself: `health.json`, systemd's status line, the writing and
coordination metrics, and instances still undecided after their settle window (the log and
the audit, once per window).

`Showing` reads the controller's parts (the tracker, every service's record, the steps in
flight, the leadership, the settle windows) and writes nothing they read back: the arrow runs
one way, from the controller's state to the operator. Built by the controller, called on its
thread each cycle (and by the daemon: status line, a health.json after a reload).
Imports the document builders, telemetry, the carrier, changes, journal, leadership and state
store (their types: it calls what they show), and the value types.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from dnsfailover.config.models import Config
from dnsfailover.controller import documents, telemetry
from dnsfailover.controller.carrier import Flights
from dnsfailover.controller.changes import Changes
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.leadership import Leadership
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import StateError
from dnsfailover.health import HealthSnapshot, HealthTracker, InstanceHealth, State
from dnsfailover.metrics import Metrics

log = logging.getLogger(__name__)


class Showing:
    def __init__(
        self,
        config: Callable[[], Config],
        tracker: HealthTracker,
        changes: Changes,
        flights: Flights,
        store: StateStore,
        journal: Journal,
        metrics: Metrics,
        leadership: Leadership | None,
        health: Callable[[str], Mapping[str, InstanceHealth]],
        settle_until: Callable[[], Mapping[str, float]],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.tracker = tracker
        self.changes = changes
        self.flights = flights
        self.store = store
        self.journal = journal
        self.metrics = metrics
        self.leadership = leadership
        self.health = health  # the policy's view: our own, or the sites' quorum
        self.settle_until = settle_until  # service → its settle window's end (the controller's)
        self.clock = clock
        self._unsettled_told: set[tuple[str, str]] = set()

    def settling(self) -> None:
        """A start or a reload: every service's settle window starts again."""
        self._unsettled_told.clear()

    def snapshot(self) -> HealthSnapshot:
        return self.tracker.snapshot(self.clock())

    def tell_unsettled(self) -> None:
        """Once per settle window: instances undecided after it (flapping: `unsettled`, or with
        no passing result: `inconclusive`; UNHEALTHY by the tracker's rule) go to the log and
        the audit."""
        now = self.clock()
        for service, until in self.settle_until().items():
            if now < until:
                continue
            for name, health in self.tracker.instances(service, now).items():
                inconclusive = any(c.inconclusive_for is not None
                                   for c in health.checks.values() if c.required)  # fmt: skip
                if health.state is State.HEALTHY or (service, name) in self._unsettled_told:
                    continue
                if health.unsettled_for is None and not inconclusive:
                    continue
                self._unsettled_told.add((service, name))
                event = "inconclusive" if inconclusive else "unsettled"
                log.warning("%s service=%s instance=%s reason=%s",
                            event, service, name, health.reason)  # fmt: skip
                self.journal.event(event, service, instance=name, reason=health.reason)

    def status_line(self) -> str:
        services = list(self.config().services)
        busy = {s for s in services if self.flights.busy(s)}
        return documents.status_line(services, self.changes.active(), self.changes.last(), busy)

    def write_health(self) -> None:
        services = self.config().services
        writing = documents.writing_summary(
            self.changes.unconfirmed(), self.flights.flights(), time.monotonic()
        )
        telemetry.record_writing(self.metrics, services, writing)
        quorum, coordination = None, None
        if self.leadership is not None:
            quorum = {service: self.health(service) for service in services}
            coordination = self.leadership.status()
            telemetry.record_coordination(self.metrics, self.leadership.view(), coordination)
            for service, health in quorum.items():
                telemetry.record_quorum(self.metrics, service, health)
        document = documents.health_document(
            self.snapshot(),
            self.changes.active(),
            self.changes.last(),
            writing,
            self.settle_until(),
            coordination,
            quorum,
        )
        try:
            self.store.save_health(document)
        except StateError as e:
            log.error("health_not_saved error=%s", e)
