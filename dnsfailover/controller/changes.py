"""Every service's record, fed events, and its actions carried out: the one path of a change.

`Changes` keeps one `ServiceRecord` per service (machine.py), steps it with each event, and
turns each action into its pipeline step (pipeline.py) or journal entry (journal.py). Where a
step runs is the carrier's business: the daemon's carrier puts it on a worker and feeds the
outcome back when the controller thread takes it (`Done`); `Inline` runs it at once, for the
one-shot commands. Either way the order of the steps, the retries and the re-reads are the
machine's, the steps the pipeline's, the entries the journal's: no second path.
Imports the machine, the pipeline, the journal and the report values; the runtime for the
settings and providers of the moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from dnsfailover.controller.journal import Journal
from dnsfailover.controller.machine import (
    Action,
    Do,
    Done,
    Entry,
    Event,
    Rules,
    ServiceRecord,
    Tick,
    step,
)
from dnsfailover.controller.pipeline import Pipeline
from dnsfailover.controller.practice import Phase, Run
from dnsfailover.controller.report import Report
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.health import InstanceHealth

log = logging.getLogger(__name__)

Work = Callable[[], Report]


class Carrier(Protocol):
    def run(self, service: str, action: Action, work: Work, timeout: float, owner: object) -> None:
        """Run `work` (it may take up to `timeout`; `owner` is the runtime whose provider it
        uses) and feed its report back as `Done(action.do, report)`."""


@dataclass
class Context:
    """What a step needs from the controller, read when the step starts."""

    runtime: Callable[[], Runtime]
    health: Callable[[str], Mapping[str, InstanceHealth]]  # what the policy decides from
    settle_until: Callable[[str], float]
    site: str | None = None  # several controllers: this controller's site
    may_write: Callable[[], bool] = lambda: True  # several controllers: leading, in time
    concluded: Callable[[Report], None] = lambda report: None  # metrics, shared history
    verified: Callable[[Report], None] = lambda report: None  # metrics
    practiced: Callable[[str, Run], None] = lambda service, run: None  # metrics


class Changes:
    def __init__(
        self,
        pipeline: Pipeline,
        journal: Journal,
        rules: Callable[[str], Rules],
        context: Context,
        carrier: Carrier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pipeline = pipeline
        self.journal = journal
        self.rules = rules
        self.context = context
        self.carrier: Carrier = carrier or Inline(self)
        self.clock = clock
        self.records: dict[str, ServiceRecord] = {}
        self.stopping = False  # the daemon stops: outcomes are journaled, no step starts

    def resume(self) -> dict[str, Run]:
        """Runs a previous daemon left on (practice/<service>.json): back in their records,
        to end on time. One whose move was not known to be written is taken as on: its
        return reads the record and finds where the name is."""
        resumed: dict[str, Run] = {}
        for service in self.context.runtime().config.services:
            run = self.journal.runs.current(service)
            if run is None or self.record(service).run is not None:
                continue
            if run.phase is not Phase.ON:
                ends_at = run.ends_at or run.requested_at + run.duration
                run = replace(run, phase=Phase.ON, ends_at=ends_at)
            self.records[service] = replace(self.record(service), run=run)
            log.warning("practice_resumed service=%s run=%s to=%s ends_at=%s", service, run.id,
                        run.target, run.ends_at)  # fmt: skip
            resumed[service] = run
        return resumed

    def record(self, service: str) -> ServiceRecord:
        return self.records.get(service, ServiceRecord())

    def feed(self, service: str, event: Event) -> None:
        """One event for one service: step its record, carry out what it says."""
        if service not in self.context.runtime().config.services:
            self.records.pop(service, None)  # gone with a reload: its outcomes are dropped
            return
        record, actions = step(self.record(service), event, self.clock(), self.rules(service))
        self.records[service] = record
        for action in actions:
            self._carry(service, action)

    def _carry(self, service: str, action: Action) -> None:
        if action.do is Do.JOURNAL:
            self._journal(service, action)
            return
        if self.stopping:
            return
        runtime = self.context.runtime()
        settings = runtime.config.services[service]
        if action.do is Do.VERIFY:
            timeout = verify_window(settings)
        elif action.do is Do.CHECK:
            command = settings.practice.blocking_command if settings.practice else None
            timeout = (command.timeout if command else 0.0) + 5.0
        else:
            timeout = runtime.provider_for(settings).change_timeout
        self.carrier.run(service, action, self._work(service, action), timeout, runtime)

    def _journal(self, service: str, action: Action) -> None:
        report, entry = action.report, action.entry
        if entry is Entry.PRACTICE:
            assert action.run is not None
            self.journal.practice(service, action.run, action.event)
            self.context.practiced(service, action.run)
            return
        assert report is not None
        if entry is Entry.DECISION:
            self.journal.decision(report)
            self.context.concluded(report)
        elif entry is Entry.CONFIRMATION:
            self.journal.confirmation(report)
        elif entry is Entry.VERIFICATION:
            if report.verification is not None:
                self.journal.verification(report)
                self.context.verified(report)
        else:
            self.journal.fence(report)

    def _work(self, service: str, action: Action) -> Work:
        """The pipeline step an action names, bound to the settings and provider of now."""
        context, pipeline = self.context, self.pipeline
        settings = context.runtime().config.services[service]
        provider = context.runtime().provider_for(settings)
        report = action.report
        if action.do is Do.PREPARE:
            assert action.intent is not None
            intent, health = action.intent, context.health(service)
            record = self.record(service)
            settle_until, token = context.settle_until(service), record.token
            run = record.run
            practice = run.target if run is not None and run.phase is Phase.ON else None

            def prepare() -> Report:
                found = pipeline.prepare(service, settings, provider, health, intent, settle_until,
                                         practice=practice)  # fmt: skip
                found.site, found.fence = context.site, token
                return found

            return prepare
        if action.do is Do.CHECK:
            assert action.intent is not None
            check = action.intent
            return lambda: pipeline.check(service, settings, check)
        if action.do is Do.FENCE:
            assert action.token is not None
            token = action.token
            return lambda: pipeline.move_fence(
                service, settings, provider, token, context.site, context.may_write
            )
        assert report is not None
        if action.do is Do.WRITE:

            def write() -> Report:
                if not context.may_write():
                    report.error = "not leading any more: change not written"
                    report.pending = report.change
                    return report
                return pipeline.write(report, provider)

            return write
        if action.do is Do.CONFIRM:
            return lambda: pipeline.confirm(report, provider)
        return lambda: pipeline.verify(report, settings)

    # ------------------------------------------------------------------ what status shows

    def active(self) -> dict[str, str | None]:
        return {service: record.active for service, record in self.records.items()}

    def last(self) -> dict[str, Report]:
        return {s: r.last for s, r in self.records.items() if r.last is not None}

    def unconfirmed(self) -> dict[str, Report]:
        return {s: r.unconfirmed for s, r in self.records.items() if r.unconfirmed is not None}

    def runs(self) -> dict[str, Run]:
        """The practice runs on now."""
        return {s: r.run for s, r in self.records.items() if r.run is not None}


class Inline:
    """Carry each step out at once, on the calling thread (the one-shot commands)."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes

    def run(self, service: str, action: Action, work: Work, timeout: float, owner: object) -> None:
        self.changes.feed(service, Done(action.do, work()))


def run_inline(
    changes: Changes, service: str, event: Event, sleep: Callable[[float], None] = time.sleep
) -> ServiceRecord:
    """Feed one event and carry every step it leads to, retries included, until the record
    rests: the one-shot commands' whole change. Waits out the machine's backoff (bounded by
    its rules' `give_up_after`)."""
    changes.feed(service, event)
    while True:
        record = changes.record(service)
        retry = record.retry
        if not record.idle or retry.at is None:
            return record
        wait = retry.at - changes.clock()
        if wait > 0:
            sleep(wait)
        log.warning("retry service=%s error=%s: again", service,
                    record.last.error if record.last else None)  # fmt: skip
        changes.feed(service, Tick())
