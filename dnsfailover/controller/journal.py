"""The journal: every audit entry is built, de-duplicated and written here, and the
notifications and counters are fed from it.

One per process: the daemon keeps it across reloads (so its de-duplication survives them),
a one-shot command makes its own. `audit.jsonl` is the record of every decision, applied or
refused, with its reason and the health behind it; field names here are the contract with
operators' tooling (`jq` over the audit log, the runbook), so they change only here. A
decision repeated unchanged is not news (quiet); a quiet keep is not written at all. A failure
to write the audit is logged, never raised into the pipeline: the change it records already
happened. No secret ever reaches an entry: entries are built from decisions, records and probe
results, never from settings.
Imports the report and state values, the store, and values below; no provider, no network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dnsfailover.controller.practice import Run
from dnsfailover.controller.report import Report
from dnsfailover.controller.runs import RunStore
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import DnsFailoverError
from dnsfailover.health import InstanceHealth
from dnsfailover.rrset import describe

log = logging.getLogger(__name__)

QUIET_RULES = {"sticky", "pinned", "unknown", "failback_wait", "practice"}
RECENT_WRITES = 20  # measurements the convergence budget's p95 is taken over
Sink = Callable[[dict[str, Any]], None]


def health_summary(health: Mapping[str, InstanceHealth]) -> dict[str, Any]:
    return {name: {"state": h.state.value, "reason": h.reason} for name, h in health.items()}


def decision_entry(report: Report) -> dict[str, Any]:
    decision = report.decision
    entry: dict[str, Any] = {
        "service": report.service,
        "event": report.event,
        "rule": decision.rule if decision else None,
        "from": decision.current if decision else None,
        "to": decision.target if decision else None,
        "reason": decision.reason if decision else None,
        "warning": decision.warning if decision else None,
        "live": describe(report.live),
        "change": report.change,
        "outcome": report.outcome,
        "error": report.error,
        "pending": report.pending,
        "conflicts": report.conflicts,
        "write_seconds": report.write_seconds,
        "trigger_at": report.trigger_at,
        "write_acked_at": report.write_acked_at,
        "health": health_summary(report.health),
    }
    if report.dry_run:
        entry["dry_run"] = True  # nothing was written: hooks say so
    if report.request is not None:
        entry["request"] = report.request
    if report.site is not None:  # several controllers: who wrote, with which token
        entry["site"], entry["fence"] = report.site, report.fence
    if report.propagation is not None:
        entry["propagation_seconds"] = report.propagation.seconds
        entry["propagation_complete"] = report.propagation.complete
        entry["propagation"] = report.propagation.summary()
    return entry


def confirmation_entry(report: Report) -> dict[str, Any]:
    """A later check of a change that was applied but not yet served everywhere."""
    propagation = report.propagation
    return {
        "service": report.service,
        "event": "confirmed" if report.served else "unconfirmed",
        "change": report.change,
        "outcome": report.outcome,
        "propagation_complete": report.served,
        "propagation": propagation.summary() if propagation else None,
    }


def verification_entry(report: Report) -> dict[str, Any]:
    """The flip as a client saw it right after it was served everywhere."""
    verification = report.verification
    assert verification is not None and report.decision is not None
    return {
        "service": report.service,
        "event": "client_verified" if verification.ok else "client_verify_failed",
        "to": report.decision.target,
        "change": report.change,
        "outcome": "ok" if verification.ok else "failed",
        "reason": verification.reason,
        "verification": verification.as_dict(),
    }


def fence_entry(report: Report) -> dict[str, Any]:
    """A new leader's move of a service's fence to its token."""
    return {
        "service": report.service,
        "event": "fenced" if report.refused_by_fence else "fence",
        "site": report.site,
        "fence": report.fence,
        "before": report.pending,
        "outcome": "applied" if report.applied else "failed",
        "error": report.error,
    }


def practice_entry(service: str, run: Run, event: str) -> dict[str, Any]:
    """A practice run started, refused or ended (its report is in practice/reports/)."""
    return {
        "service": service,
        "event": event,
        "run": run.id,
        "from": run.origin,
        "to": run.target,
        "reason": run.reason,
        "scheduled": run.scheduled,
        "duration": run.duration,
        "outcome": run.outcome.value,
        "why": run.why or None,
        "checks": [c.summary() for c in run.checks],
        "timeline": {step: at for step, at in run.timeline},
    }


def measurements(
    entries: Iterable[dict[str, Any]], service: str
) -> tuple[list[float], list[float]]:
    """Recent write and propagation seconds of `service`'s applied changes, oldest first."""
    writes: list[float] = []
    propagations: list[float] = []
    for entry in entries:
        if entry.get("service") != service or entry.get("outcome") != "applied":
            continue
        if isinstance(entry.get("write_seconds"), int | float):
            writes.append(float(entry["write_seconds"]))
        if isinstance(entry.get("propagation_seconds"), int | float):
            propagations.append(float(entry["propagation_seconds"]))
    return writes[-RECENT_WRITES:], propagations[-RECENT_WRITES:]


class Journal:
    def __init__(self, store: StateStore, sinks: Iterable[Sink] = ()) -> None:
        self.store = store
        self.sinks = list(sinks)  # fed every entry that is an event (notifications, counters)
        self._last: dict[str, tuple[str, str, str]] = {}  # service → last decision audited
        self.runs = RunStore(store.directory)

    def write(self, entry: dict[str, Any], notify: bool = False) -> dict[str, Any]:
        """Append one entry (never raises: a failure is logged); an event for the hooks goes
        to the sinks too."""
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed service=%s event=%s error=%s",
                      entry.get("service"), entry.get("event"), e)  # fmt: skip
        if notify:
            for sink in self.sinks:
                try:
                    sink(entry)
                except Exception:  # a sink's bug must not stop the journal
                    log.exception("journal_sink_failed event=%s", entry.get("event"))
        return entry

    def decision(self, report: Report) -> dict[str, Any] | None:
        """A concluded change: its entry, or None when it was quiet or a repeat."""
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
        repeated = self._last.get(report.service) == signature and not report.applied
        if quiet or repeated:
            return None
        self._last[report.service] = signature
        return self.write(decision_entry(report), notify=True)

    def confirmation(self, report: Report) -> dict[str, Any]:
        if report.served and report.propagation is not None:
            log.info("propagation_complete service=%s %s",
                     report.service, report.propagation.summary())  # fmt: skip
        self._last.pop(report.service, None)  # what follows a confirmation is news again
        return self.write(confirmation_entry(report))

    def verification(self, report: Report) -> dict[str, Any]:
        entry = verification_entry(report)
        verification = report.verification
        assert verification is not None
        if verification.ok:
            log.info("client_verified service=%s to=%s seconds=%.2f",
                     report.service, entry["to"], verification.seconds)  # fmt: skip
        else:
            log.error("client_verify_failed service=%s to=%s reason=%s",
                      report.service, entry["to"], verification.reason)  # fmt: skip
        return self.write(entry, notify=not verification.ok)

    def practice(self, service: str, run: Run, event: str | None) -> dict[str, Any] | None:
        """A practice run's progress: its report saved (before its first write, and after
        each step); an entry when it started, was refused or ended."""
        try:
            self.runs.save(service, run)
        except DnsFailoverError as e:
            log.error("practice_not_saved service=%s run=%s error=%s", service, run.id, e)
        if event is None:
            return None
        level = logging.INFO if run.outcome.value in ("PENDING", "SUCCEEDED") else logging.WARNING
        log.log(level, "%s service=%s run=%s to=%s outcome=%s why=%s", event, service, run.id,
                run.target, run.outcome.value, run.why)  # fmt: skip
        return self.write(practice_entry(service, run, event), notify=event == "practice_ended")

    def fence(self, report: Report) -> dict[str, Any]:
        if report.applied:
            log.info("fence_moved service=%s token=%s from=%s",
                     report.service, report.fence, report.pending)  # fmt: skip
        else:
            log.error("fence_not_moved service=%s token=%s error=%s",
                      report.service, report.fence, report.error)  # fmt: skip
        return self.write(fence_entry(report))

    def event(
        self, event: str, service: str | None = None, notify: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Anything else worth a line: an operator's verb, a leadership change, a recovery
        (an event for the hooks), an instance still unsettled after its window."""
        return self.write({"service": service, "event": event, **fields}, notify=notify)
