"""The daemon's carrier: each step of a change on a worker, its outcome back on the queue.

Steps that touch DNS (reading and deciding, writing and confirming, re-checking, moving a fence)
share one pool; a client's check of a flip may wait a TTL, so it has a pool of its own and never
holds the service's next change. A step that raises (a bug: steps report, they do not raise)
still lands, as a failed step, so its service is never left busy for ever.
Imports the workers, the machine's action names and the report value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dnsfailover.controller.changes import Work
from dnsfailover.controller.machine import Action, Do
from dnsfailover.controller.report import Report
from dnsfailover.controller.workers import Flight, Workers

log = logging.getLogger(__name__)
BESIDE = (Do.VERIFY, Do.CHECK)  # steps that write nothing, beside the service's change


class Flights:
    def __init__(self, size: int, done: Callable[[Flight], None]) -> None:
        self.steps = Workers(size, done)
        self.checks = Workers(size, done)

    def run(self, service: str, action: Action, work: Work, timeout: float, owner: object) -> None:
        flight = Flight(service, action.do, action.report, owner, timeout)

        def carry() -> None:
            try:
                flight.payload = work()
            except Exception as e:
                log.exception("step_crashed service=%s step=%s", service, action.do.value)
                report = action.report or Report(service)
                report.error = f"{action.do.value} crashed: {type(e).__name__}"
                flight.payload = report

        pool = self.checks if action.do in BESIDE else self.steps
        pool.submit(flight, carry)

    def land(self, flight: Flight) -> None:
        (self.checks if flight.kind in BESIDE else self.steps).land(flight)

    def busy(self, service: str) -> bool:
        """The service's change is being written now: a write, a re-check or a fence's move
        (deciding and a client's check do not count)."""
        return any(f.service == service and f.kind is not Do.PREPARE for f in self.flights())

    def flights(self) -> list[Flight]:
        return self.steps.flights()

    def owners(self) -> set[int]:
        """The runtimes some step still uses (a reload closes the others)."""
        return {id(f.owner) for f in (*self.steps.flights(), *self.checks.flights())}

    def drain(self, grace: float) -> list[Flight]:
        """Wait up to `grace` for the steps in flight; those still running. A client's check
        writes nothing: it is not waited for."""
        left = self.steps.drain(grace)
        self.checks.drain(0.0)
        return left
