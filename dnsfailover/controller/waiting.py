"""Waiting for a change the control socket asked for, and running a request's part on the
controller thread.

A `Call` is put on the daemon's queue and run by the controller thread (daemon.py); its result
goes back to the waiting socket thread through a future. `Waiters` lives on the controller
thread only: each request's intent carries an id, and when a change of that id concludes (or
its flip is verified, when a client check follows) the waiting request has its answer. A
request that waited while the service was busy is answered by the change that started after it.
Imports the controller (the type a `Call` runs against) and the report values.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dnsfailover.controller.controller import Controller
from dnsfailover.controller.report import Report
from dnsfailover.errors import DnsFailoverError

log = logging.getLogger(__name__)


@dataclass
class Waiter:
    service: str
    seq: int
    future: Future[Report]
    then: Callable[[Report], None] | None = None  # on the controller thread, if it succeeded
    report: Report | None = None  # concluded; verification may still be on its way


@dataclass
class Waiters:
    """Requests waiting for their change, by intent id. The controller thread only."""

    waiting: dict[str, Waiter] = field(default_factory=dict)
    seq: int = 0

    def add(self, service: str, then: Callable[[Report], None] | None = None) -> tuple[str, Waiter]:
        self.seq += 1
        intent_id = uuid.uuid4().hex
        waiter = Waiter(service, self.seq, Future(), then)
        self.waiting[intent_id] = waiter
        return intent_id, waiter

    def concluded(self, report: Report, verifies: bool) -> None:
        """A change concluded. Its waiter, and the same service's older ones (a request that
        waited while the service was busy is carried out by the change that started after it),
        have their answer — once the flip is verified, when it is to be."""
        own = self.waiting.get(report.intent.id or "")
        if own is None or own.service != report.service:
            return
        if own.then is not None and report.error is None:
            try:
                own.then(report)
            except Exception:  # the answer still goes out
                log.exception("control_then_failed service=%s", report.service)
        for key, waiter in list(self.waiting.items()):
            if waiter.service == report.service and waiter.seq <= own.seq:
                waiter.report = report
                if not (verifies and report.flipped and report.verification is None):
                    self._resolve(key, report)

    def verified(self, report: Report) -> None:
        for key, waiter in list(self.waiting.items()):
            if waiter.report is report:
                self._resolve(key, report)

    def forget(self, intent_id: str) -> None:
        self.waiting.pop(intent_id, None)

    def _resolve(self, key: str, report: Report) -> None:
        waiter = self.waiting.pop(key)
        if not waiter.future.done():
            waiter.future.set_result(report)


class Call:
    """A request's part that runs on the controller thread (the daemon takes it from its
    queue); its answer goes back through a future. One the socket thread gave up on (cancelled
    before it ran) never runs: an operator told "nothing done" must be right."""

    def __init__(self, run: Callable[[Controller], Any]) -> None:
        self._run = run
        self.future: Future[Any] = Future()

    def run(self, controller: Controller, stopping: bool = False) -> None:
        if not self.future.set_running_or_notify_cancel():
            return  # cancelled: nobody waits for it any more
        if stopping:
            self.future.set_exception(DnsFailoverError("the daemon is stopping"))
            return
        try:
            self.future.set_result(self._run(controller))
        except Exception as e:
            self.future.set_exception(e)
