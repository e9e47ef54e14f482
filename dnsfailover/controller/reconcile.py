"""One reconcile of one service: read → decide → plan → compare-and-swap → confirm → record.

Used by the daemon for every cycle and by the CLI for `failover`, `drain` and `run --once`.
A conflict (someone changed the record between our read and our write) means re-read and
re-decide, a bounded number of times; a manual move is never retried blindly (exit 4).
State is proven writable before a DNS write, so no change is made that could not be recorded.
Every decision other than a quiet "keep" goes to the audit log with the health behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dnsfailover.config.models import Service
from dnsfailover.controller.state import Flip, State, StateStore
from dnsfailover.crashpoint import crashpoint
from dnsfailover.errors import ConflictError, DnsFailoverError
from dnsfailover.health import InstanceHealth
from dnsfailover.plan import Plan, drift_reason, make_plan, owner_of
from dnsfailover.policy import Decision, Kind, PolicyInput, decide
from dnsfailover.providers import Propagation, Provider
from dnsfailover.rrset import RRset, describe

log = logging.getLogger(__name__)

MAX_CONFLICTS = 3
QUIET_RULES = {"sticky", "pinned", "unknown", "failback_wait"}


@dataclass
class Report:
    """What one reconcile did; the controller turns it into status, metrics and events."""

    service: str
    decision: Decision | None = None
    live: RRset | None = None
    change: str | None = None
    applied: bool = False
    dry_run: bool = False
    drift: bool = False
    conflicts: int = 0
    error: str | None = None
    pending: str | None = None  # a change wanted but not written (the provider failed)
    write_seconds: float | None = None
    propagation: Propagation | None = None
    # Wall-clock times for the audit, so failover time can be measured from the outside:
    # when the probe result that changed health finished (the daemon passes it in), and when
    # the provider acknowledged the write.
    trigger_at: float | None = None
    write_acked_at: float | None = None
    events: list[str] = field(default_factory=list)

    @property
    def event(self) -> str:
        """The event a notification or metric names: failover, manual, refusal, all_down, ..."""
        if self.error is not None:
            return "conflict" if self.error.startswith("conflict") else "error"
        if self.drift:
            return "drift"
        if self.decision is None:
            return "none"
        if self.applied or self.dry_run:
            return "manual" if self.decision.rule == "manual" else "failover"
        return {Kind.REFUSE: "refusal", Kind.ALARM: "all_down"}.get(self.decision.kind, "keep")


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
        self._last_audited: dict[str, tuple[str, str]] = {}
        self._last_live: dict[str, RRset | None] = {}  # the record at the last good read

    def reconcile(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        manual: Decision | None = None,
        trigger_at: float | None = None,
    ) -> Report:
        report = Report(key, trigger_at=trigger_at)
        try:
            self._run(key, service, provider, health, manual, report)
        except ConflictError as e:
            report.error = f"conflict: {e}"
            if manual is not None:
                self._audit(report, health)
                raise
        except DnsFailoverError as e:
            report.error = str(e)
            if manual is not None:
                self._audit(report, health)
                raise
            report.pending = self._pending(key, service, health, report)
        if report.error:
            log.error("reconcile_failed service=%s error=%s", key, report.error)
        self._audit(report, health)
        return report

    def _run(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        manual: Decision | None,
        report: Report,
    ) -> None:
        for attempt in range(MAX_CONFLICTS + 1):
            state = self.store.load()
            live = provider.read(service.name, service.type)
            self._last_live[key] = live
            report.live = live
            owner = owner_of(service, live)
            if live is not None and owner is None and manual is None and not service.adopt:
                report.drift = True
                report.decision = Decision(
                    Kind.KEEP, None, None, "drift", drift_reason(service, live) + ": left alone"
                )
                return
            if manual is not None:
                decision = Decision(Kind.MOVE, owner, manual.target, "manual", manual.reason)
            else:
                decision = self._decide(key, service, health, owner, state)
            report.decision = decision
            plan = make_plan(key, service, decision, live)
            if plan.change is None:
                return
            report.change = plan.change.summary()
            if self.dry_run:
                report.dry_run = True
                log.info("dry_run service=%s change=%s", key, report.change)
                return
            try:
                self._write(key, provider, plan, report)
                return
            except ConflictError:
                report.conflicts += 1
                log.warning("conflict service=%s attempt=%d: re-reading", key, attempt + 1)
                if manual is not None or attempt == MAX_CONFLICTS:
                    raise

    def _decide(
        self,
        key: str,
        service: Service,
        health: Mapping[str, InstanceHealth],
        owner: str | None,
        state: State,
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
            )
        )

    def _pending(
        self, key: str, service: Service, health: Mapping[str, InstanceHealth], report: Report
    ) -> str | None:
        """The change this service still wants, judged from the last record we could read."""
        if report.decision is not None and report.decision.kind is Kind.MOVE:
            return report.change or f"move to {report.decision.target}"
        if key not in self._last_live:
            return None
        live = self._last_live[key]
        owner = owner_of(service, live)
        if live is not None and owner is None:
            return None
        try:
            decision = self._decide(key, service, health, owner, self.store.load())
        except DnsFailoverError:
            return None
        plan = make_plan(key, service, decision, live)
        return None if plan.change is None else plan.change.summary()

    def _write(self, key: str, provider: Provider, plan: Plan, report: Report) -> None:
        assert plan.change is not None
        with self.store.locked():
            self.store.save(self.store.load())  # prove the state is writable before DNS moves
        crashpoint("before_write")
        started = time.monotonic()
        receipt = provider.apply(plan.change)
        report.write_seconds = time.monotonic() - started
        report.write_acked_at = self.clock()
        report.applied = True
        crashpoint("after_write")
        decision = plan.decision
        assert decision.target is not None
        with self.store.locked():
            state = self.store.load()
            flip = Flip(self.clock(), decision.current, decision.target, decision.rule)
            self.store.save(state.with_flip(key, flip))
        log.info(
            "written service=%s change=%s seconds=%.3f", key, report.change, report.write_seconds
        )
        report.propagation = provider.wait(receipt, provider.propagation_timeout)
        if not report.propagation.complete:
            report.events.append("propagation_incomplete")
            log.error("propagation_incomplete service=%s %s", key, report.propagation.summary())

    def _audit(self, report: Report, health: Mapping[str, InstanceHealth]) -> None:
        decision = report.decision
        signature = (report.event, decision.reason if decision else report.error or "")
        quiet = (
            decision is not None
            and decision.rule in QUIET_RULES
            and not report.error
            and report.change is None
        )
        if quiet or (self._last_audited.get(report.service) == signature and not report.applied):
            return
        self._last_audited[report.service] = signature
        entry: dict[str, Any] = {
            "service": report.service,
            "event": report.event,
            "rule": decision.rule if decision else None,
            "from": decision.current if decision else None,
            "to": decision.target if decision else None,
            "reason": decision.reason if decision else None,
            "live": describe(report.live),
            "change": report.change,
            "outcome": "applied"
            if report.applied
            else "dry_run"
            if report.dry_run
            else "failed"
            if report.error
            else "not_applied",
            "error": report.error,
            "pending": report.pending,
            "conflicts": report.conflicts,
            "write_seconds": report.write_seconds,
            "trigger_at": report.trigger_at,
            "write_acked_at": report.write_acked_at,
            "health": {
                name: {"state": h.state.value, "reason": h.reason} for name, h in health.items()
            },
        }
        if report.propagation is not None:
            entry["propagation_seconds"] = report.propagation.seconds
            entry["propagation_complete"] = report.propagation.complete
            entry["propagation"] = report.propagation.summary()
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed service=%s error=%s", report.service, e)
        self.on_event(entry)
