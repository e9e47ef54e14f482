"""One reconcile of one service, in three steps that the daemon can run on different threads:

1. `prepare`: read the live record → decide → plan. Cheap; on the controller thread.
2. `execute`: record the flip intent → compare-and-swap write → record the flip → wait until
   every authoritative server serves it. Slow; the daemon runs it on a per-service worker.
3. `finish`: log and audit the outcome. On the controller thread.

`reconcile` runs the three in a row (the CLI's `failover`, `drain`, `run --once`), `preview`
only the first (`plan`): one path from health to plan for every caller. A conflict (someone
changed the record between our read and our write) means re-read and re-decide, a bounded
number of times; a manual move is never retried blindly (ConflictError, exit 4). State is
proven writable before a DNS write (the intent is saved first), so no change is made that
could not be recorded, and a crash between the write and the flip record is settled by
`recover` at the next read.
Imports state, documents, verify values and the layers below; never the daemon, the scheduler
or the workers (they call it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dnsfailover.config.models import Service
from dnsfailover.controller import documents
from dnsfailover.controller.state import Flip, State, StateStore
from dnsfailover.controller.verify import Verification
from dnsfailover.crashpoint import crashpoint
from dnsfailover.errors import ConflictError, DnsFailoverError, FencedError, TransientError
from dnsfailover.health import InstanceHealth
from dnsfailover.plan import Plan, drift_reason, make_plan, owner_of, record_ttl
from dnsfailover.policy import Decision, Kind, PolicyInput, decide
from dnsfailover.providers import Propagation, Provider, Receipt, ServerView
from dnsfailover.rrset import RRset

log = logging.getLogger(__name__)

MAX_CONFLICTS = 3
TRANSIENT_RETRIES = (0.5, 1.0)  # one-shot commands: delays before reading and deciding again
QUIET_RULES = {"sticky", "pinned", "unknown", "failback_wait"}


@dataclass
class Report:
    """What one reconcile did; the controller turns it into status, metrics and events."""

    service: str
    health: Mapping[str, InstanceHealth] = field(default_factory=dict)  # behind the decision
    decision: Decision | None = None
    live: RRset | None = None
    plan: Plan | None = None
    change: str | None = None
    applied: bool = False
    dry_run: bool = False
    drift: bool = False
    conflicts: int = 0
    conflict: bool = False  # the last write attempt met a conflict
    transient: bool = False  # the error may go away on its own (SERVFAIL, a timeout)
    abandoned: bool = False  # the daemon stopped before the write finished
    error: str | None = None
    pending: str | None = None  # a change wanted but not written (the provider failed)
    receipt: Receipt | None = None
    write_seconds: float | None = None
    propagation: Propagation | None = None
    # Wall-clock times for the audit, so failover time can be measured from the outside:
    # when the probe result that changed health finished (the daemon passes it in), and when
    # the provider acknowledged the write.
    trigger_at: float | None = None
    write_acked_at: float | None = None
    verification: Verification | None = None  # the flip, as a client sees it (verify.py)
    # Several controllers: the leader's site and fencing token that this write carries, and
    # whether the DNS refused it because a newer leader's token holds the fence.
    site: str | None = None
    fence: int | None = None
    fenced: bool = False
    request: str | None = None  # the shared failover request this carries out (shared.py)

    @property
    def flipped(self) -> bool:
        """A move was written and every authoritative server serves it."""
        return (
            self.applied
            and self.decision is not None
            and self.decision.kind is Kind.MOVE
            and self.propagation is not None
            and self.propagation.complete
        )

    @property
    def wants_write(self) -> bool:
        return (
            self.plan is not None
            and self.plan.change is not None
            and not self.dry_run
            and self.error is None
            and not self.applied
        )

    @property
    def event(self) -> str:
        """The event a notification or metric names: failover, manual, refusal, all_down, ..."""
        if self.abandoned:
            return "abandoned"
        if self.fenced:
            return "fenced"
        if self.error is not None:
            return "conflict" if self.conflict else "error"
        if self.drift:
            return "drift"
        if self.decision is None:
            return "none"
        if (self.applied or self.dry_run) and self.plan is not None and self.plan.ttl_only:
            return "ttl"  # degraded_ttl on or off: the record keeps its instance
        if self.applied or self.dry_run:
            return "manual" if self.decision.rule == "manual" else "failover"
        return {Kind.REFUSE: "refusal", Kind.ALARM: "all_down"}.get(self.decision.kind, "keep")

    @property
    def outcome(self) -> str:
        """applied, applied_unconfirmed (written, not yet served everywhere), abandoned (the
        daemon stopped before the write landed), dry_run, failed or not_applied."""
        if self.applied:
            complete = self.propagation is not None and self.propagation.complete
            return "applied" if complete else "applied_unconfirmed"
        if self.abandoned:
            return "abandoned"
        if self.dry_run:
            return "dry_run"
        return "failed" if self.error else "not_applied"


class Reconciler:
    def __init__(
        self,
        store: StateStore,
        clock: Callable[[], float] = time.time,
        dry_run: bool = False,
        on_event: Callable[[dict[str, Any]], None] = lambda entry: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.dry_run = dry_run
        self.on_event = on_event  # every audited decision, for notifications
        self._last_audited: dict[str, tuple[str, str, str]] = {}
        self._last_live: dict[str, RRset | None] = {}  # the record at the last good read
        self._executing: set[str] = set()  # services whose write runs now, in this process

    # ------------------------------------------------------------------ the whole path

    def reconcile(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        manual: Decision | None = None,
        trigger_at: float | None = None,
        settle_until: float = -math.inf,
    ) -> Report:
        """Prepare, execute and finish, now: for the commands that act once. A conflict means
        read and decide again (bounded; never for a manual move); so does a transient error
        (SERVFAIL, a timeout), after a short wait, since there is no next tick to retry in."""
        conflicts = 0
        waits = list(TRANSIENT_RETRIES)
        while True:
            report = self.prepare(key, service, provider, health, manual, trigger_at, settle_until)
            report.conflicts = conflicts
            if report.wants_write:
                self.execute(report, provider)
            conflicts = report.conflicts
            if report.transient and waits:
                log.warning("transient service=%s error=%s: again", key, report.error)
                time.sleep(waits.pop(0))
                continue
            if not report.conflict or manual is not None or conflicts > MAX_CONFLICTS:
                break
            log.warning("conflict service=%s attempt=%d: re-reading", key, conflicts)
        self.finish(report)
        if manual is not None and report.error is not None:
            raise (ConflictError if report.conflict else DnsFailoverError)(report.error)
        return report

    def preview(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        settle_until: float = -math.inf,
    ) -> Report:
        """What `reconcile` would do now, writing nothing (not even the audit): `plan`."""
        return self.prepare(
            key, service, provider, health, settle_until=settle_until, dry_run=True, recover=False
        )

    # ------------------------------------------------------------------ 1. prepare

    def prepare(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        manual: Decision | None = None,
        trigger_at: float | None = None,
        settle_until: float = -math.inf,
        dry_run: bool | None = None,
        recover: bool = True,
    ) -> Report:
        report = Report(key, health, trigger_at=trigger_at)
        report.dry_run = self.dry_run if dry_run is None else dry_run
        try:
            if recover and key not in self._executing:
                self.recover(key, service, provider)
            state = self.store.load()
            live = provider.read(service.name, service.type)
        except DnsFailoverError as e:
            report.error = str(e)
            report.transient = isinstance(e, TransientError)
            report.pending = self._pending(key, service, health, settle_until)
            return report
        self._last_live[key] = live
        report.live = live
        owner = owner_of(service, live)
        if live is not None and owner is None and manual is None and not service.adopt:
            report.drift = True
            report.decision = Decision(
                Kind.KEEP, None, None, "drift", drift_reason(service, live) + ": left alone"
            )
            return report
        if manual is not None:
            decision = Decision(Kind.MOVE, owner, manual.target, "manual", manual.reason)
        else:
            decision = self._decide(key, service, health, owner, state, settle_until)
        report.decision = decision
        flips = state.flip_times(key)
        ttl = record_ttl(service, decision, health, flips, self.clock())
        report.plan = make_plan(key, service, decision, live, ttl)
        if report.plan.change is not None:
            report.change = report.plan.change.summary()
            if report.dry_run:
                log.info("dry_run service=%s change=%s", key, report.change)
        return report

    def _decide(
        self,
        key: str,
        service: Service,
        health: Mapping[str, InstanceHealth],
        owner: str | None,
        state: State,
        settle_until: float,
    ) -> Decision:
        pin = state.pins.get(key)
        return decide(
            PolicyInput(
                service,
                health,
                owner,
                pin.instance if pin else None,
                frozenset(state.drains),
                state.flip_times(key),
                self.clock(),
                settle_until,
            )
        )

    def _pending(
        self,
        key: str,
        service: Service,
        health: Mapping[str, InstanceHealth],
        settle_until: float,
    ) -> str | None:
        """The change this service still wants, judged from the last record we could read."""
        if key not in self._last_live:
            return None
        live = self._last_live[key]
        owner = owner_of(service, live)
        if live is not None and owner is None:
            return None
        try:
            decision = self._decide(key, service, health, owner, self.store.load(), settle_until)
        except DnsFailoverError:
            return None
        plan = make_plan(key, service, decision, live)
        return None if plan.change is None else plan.change.summary()

    def recover(self, key: str, service: Service, provider: Provider) -> None:
        """Settle a flip intent that no write of this process owns (a crash, or a write whose
        outcome was uncertain): the flip happened if the record holds its target."""
        intent = self.store.load().intents.get(key)
        if intent is None:
            return
        owner = owner_of(service, provider.read(service.name, service.type))
        if owner == intent.target:
            self.store.complete_flip(key, intent)
            log.warning("flip_recovered service=%s to=%s: it landed", key, intent.target)
        else:
            self.store.abandon_flip(key)
            log.warning("flip_intent_dropped service=%s to=%s: it did not land", key, intent.target)

    # ------------------------------------------------------------------ 2. execute

    def execute(self, report: Report, provider: Provider) -> Report:
        """Write the planned change and wait for it to be served. Never raises."""
        key, plan = report.service, report.plan
        assert plan is not None and plan.change is not None
        decision = plan.decision
        target = decision.target if decision.kind is Kind.MOVE else decision.current
        assert target is not None
        # A TTL-only change (degraded_ttl) is no flip: hold-down and the flip rate ignore it.
        flip = (
            None if plan.ttl_only else Flip(self.clock(), decision.current, target, decision.rule)
        )
        self._executing.add(key)
        try:
            self._write(report, provider, flip)
        finally:
            self._executing.discard(key)
        return report

    def _write(self, report: Report, provider: Provider, flip: Flip | None) -> None:
        key, plan = report.service, report.plan
        assert plan is not None and plan.change is not None
        try:
            if flip is not None:
                self.store.begin_flip(key, flip)  # proves the state writable, before DNS moves
            else:
                self.store.update(lambda state: state)  # proves the state writable all the same
            crashpoint("before_write")
            started = time.monotonic()
            report.receipt = provider.apply(plan.change, fence=report.fence)
        except FencedError as e:
            report.fenced, report.error = True, f"fenced: {e}"
            if flip is not None:
                self._forget(key)
            return
        except ConflictError as e:
            report.conflicts += 1
            report.conflict, report.error = True, f"conflict: {e}"
            if flip is not None:
                self._forget(key)
            return
        except TransientError as e:
            report.error = str(e)  # it may have landed: the intent stays, the next read settles it
            report.transient = True
            report.pending = report.change
            return
        except DnsFailoverError as e:
            report.error = str(e)
            report.pending = report.change
            if flip is not None:
                self._forget(key)
            return
        report.write_seconds = time.monotonic() - started
        report.write_acked_at = self.clock()
        report.applied = True
        crashpoint("after_write")
        log.info(
            "written service=%s change=%s seconds=%.3f", key, report.change, report.write_seconds
        )
        try:
            if flip is not None:
                self.store.complete_flip(key, replace(flip, at=report.write_acked_at))
        except DnsFailoverError as e:  # the intent stays: recovered at the next read
            log.error("flip_not_recorded service=%s error=%s", key, e)
        self.confirm(report, provider)

    def confirm(self, report: Report, provider: Provider) -> Report:
        """Wait until every server that answers clients serves the applied change."""
        assert report.receipt is not None
        try:
            report.propagation = provider.wait(report.receipt, provider.propagation_timeout)
        except DnsFailoverError as e:
            view = ServerView(provider.name, False, str(e), 0.0)
            report.propagation = Propagation(False, 0.0, (view,))
        if not report.propagation.complete:
            log.error(
                "propagation_incomplete service=%s %s", report.service, report.propagation.summary()
            )
        return report

    def _forget(self, key: str) -> None:
        try:
            self.store.abandon_flip(key)
        except DnsFailoverError as e:
            log.error("flip_intent_not_cleared service=%s error=%s", key, e)

    # ------------------------------------------------------------------ 3. finish

    def finish(self, report: Report) -> dict[str, Any] | None:
        """Log and audit the outcome; the audit entry, or None when it was quiet."""
        if report.error:
            log.error("reconcile_failed service=%s error=%s", report.service, report.error)
        decision = report.decision
        # The same decision again is not news; a different error (a fenced write names the
        # newer token) is.
        signature = (report.event, decision.reason if decision else "", report.error or "")
        quiet = (
            decision is not None
            and decision.rule in QUIET_RULES
            and not report.error
            and report.change is None
        )
        repeated = self._last_audited.get(report.service) == signature and not report.applied
        if quiet or repeated:
            return None
        self._last_audited[report.service] = signature
        entry = documents.audit_entry(report)
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed service=%s error=%s", report.service, e)
        self.on_event(entry)
        return entry

    def finish_verification(self, report: Report) -> dict[str, Any]:
        """Audit the flip as a client saw it; a failure is an event for the notifications."""
        entry = documents.verification_entry(report)
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed service=%s error=%s", report.service, e)
        if entry["outcome"] == "failed":
            self.on_event(entry)
        return entry

    def finish_confirmation(self, report: Report) -> dict[str, Any]:
        """Audit a later check of an applied change: served everywhere now, or still not."""
        entry = documents.confirmation_entry(report)
        if report.propagation is not None and report.propagation.complete:
            log.info(
                "propagation_complete service=%s %s", report.service, report.propagation.summary()
            )
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed service=%s error=%s", report.service, e)
        self._last_audited.pop(report.service, None)
        return entry
