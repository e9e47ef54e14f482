"""What the operator reads back: a concluded change as lines and an exit code, and the status
document (read live). The same words whether the daemon answers over its control socket
(door.py) or the CLI acts alone (cli/operate.py).
Imports the controller's documents, journal, runtime, state and report values, and the exit
codes of the control protocol.
"""

from __future__ import annotations

from typing import Any

from dnsfailover.config.models import Config
from dnsfailover.controller import documents
from dnsfailover.controller.control import CONFLICT, FAILURE, OK
from dnsfailover.controller.journal import measurements
from dnsfailover.controller.report import Report
from dnsfailover.controller.runs import RunStore
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import DnsFailoverError
from dnsfailover.plan import owner_of
from dnsfailover.plan.budget import Budget, convergence_budget

# ----------------------------------------------------------------------------- status


def budgets(config: Config, store: StateStore) -> dict[str, Budget]:
    entries, _ = store.read_audit()
    return {
        key: convergence_budget(service, *measurements(entries, key))
        for key, service in config.services.items()
    }


def status_document(config: Config, runtime: Runtime, store: StateStore) -> dict[str, Any]:
    """`status --json`: what DNS serves now (read live), the state, the daemon's health."""
    live: dict[str, tuple[Any, str | None, str | None]] = {}
    for key, service in config.services.items():
        try:
            record = runtime.provider_for(service).read(service.name, service.type)
            live[key] = (record, owner_of(service, record), None)
        except DnsFailoverError as e:
            live[key] = (None, None, str(e))
    document = documents.status_document(
        config, store.load(), store.load_health(), store.daemon_pid(), live, budgets(config, store)
    )
    runs = RunStore(config.state_dir)
    for key, entry in document["services"].items():
        current = runs.current(key)
        entry["practice"] = {
            "on": current.to_json() if current is not None else None,
            "last": _practice_summary(runs.last_report(key)),
        }
    return document


def _practice_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keys = ("id", "origin", "target", "outcome", "why", "requested_at", "ended_at", "scheduled")
    return {k: report.get(k) for k in keys}


# ----------------------------------------------------------------------------- reports


def report_lines(report: Report) -> list[str]:
    """A concluded change as the operator reads it (the CLI prints the same without a daemon)."""
    decision = report.decision
    what = report.change or "no change"
    reason = decision.reason if decision else ""
    tail = f" (error: {report.error})" if report.error else ""
    mode = " [dry-run: not written]" if report.dry_run else ""
    lines = [f"{report.service}: {what}{mode} — {reason}{tail}"]
    if decision is not None and decision.warning:
        lines.append(f"  warning: {decision.warning}")
    if report.propagation is not None:
        lines.append(
            f"  propagation {report.propagation.seconds:.3f}s: {report.propagation.summary()}"
        )
    v = report.verification
    if v is not None:
        seen = f"({v.through}{', ' + v.address if v.address else ''}): {v.reason}"
        verdict = f"clients get through {seen}" if v.ok else f"ALARM: clients fail {seen}"
        lines.append(f"  {verdict}, after {v.seconds:.2f}s")
    return lines


def report_exit(report: Report) -> int:
    if report.error is not None:
        return CONFLICT if report.conflict else FAILURE
    if report.outcome == "applied_unconfirmed":
        return FAILURE
    if report.verification is not None and not report.verification.ok:
        return FAILURE
    return OK
