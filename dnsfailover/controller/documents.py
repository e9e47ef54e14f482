"""Every JSON document the project writes, built (and read back) in one place:

- the audit entry (`audit.jsonl`, one per decision that is not a quiet keep),
- `health.json` (the daemon's view, rewritten when health changes and every cycle),
- the `status --json` document (built from the state, `health.json` and live reads).

Field names here are the contract with operators' tooling (`jq` over the audit log, the README's
runbook), so they change only here. No secret ever reaches these values: they are built from
decisions, records and probe results, never from settings. Imports values only (health, plan
budget, rrset; the reconciler's Report for types): no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dnsfailover.health import HealthSnapshot, InstanceHealth
from dnsfailover.plan.budget import Budget
from dnsfailover.rrset import RRset, describe

RECENT_WRITES = 20  # measurements the convergence budget's p95 is taken over

if TYPE_CHECKING:
    from dnsfailover.config.models import Config
    from dnsfailover.controller.reconcile import Report
    from dnsfailover.controller.state import State


# ----------------------------------------------------------------------------- audit.jsonl


def health_summary(health: Mapping[str, InstanceHealth]) -> dict[str, Any]:
    return {name: {"state": h.state.value, "reason": h.reason} for name, h in health.items()}


def audit_entry(report: Report) -> dict[str, Any]:
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
    complete = propagation is not None and propagation.complete
    return {
        "service": report.service,
        "event": "confirmed" if complete else "unconfirmed",
        "change": report.change,
        "outcome": report.outcome,
        "propagation_complete": complete,
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


def measurements(entries: list[dict[str, Any]], service: str) -> tuple[list[float], list[float]]:
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


def budget_summary(budget: Budget) -> dict[str, Any]:
    return {"seconds": budget.parts(), "text": budget.text()}


# ----------------------------------------------------------------------------- health.json


def last_summary(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "event": report.event,
        "reason": report.decision.reason if report.decision else None,
        "warning": report.decision.warning if report.decision else None,
        "error": report.error,
        "change": report.change,
        "pending": report.pending,
        "outcome": report.outcome,
        "propagation": report.propagation.summary() if report.propagation else None,
    }


def instance_summary(health: InstanceHealth) -> dict[str, Any]:
    return {
        "state": health.state.value,
        "since": health.since,
        "reason": health.reason,
        "unsettled_for": health.unsettled_for,
        "checks": {
            c: {
                "state": ch.state.value,
                "reason": ch.reason,
                "result": ch.last.as_dict() if ch.last else None,
            }
            for c, ch in health.checks.items()
        },
    }


def health_document(
    snapshot: HealthSnapshot,
    active: Mapping[str, str | None],
    last: Mapping[str, Report],
    writing: Mapping[str, dict[str, Any]],
    settle_until: Mapping[str, float],
    coordination: dict[str, Any] | None = None,
    quorum: Mapping[str, Mapping[str, InstanceHealth]] | None = None,
) -> dict[str, Any]:
    """The daemon's view. `writing`: the change each service has in flight or unconfirmed;
    with several controllers, `coordination` (leadership, sites) and `quorum` (each
    instance's health as the sites' quorum sees it: what the leader decides from)."""
    services: dict[str, Any] = {}
    for key, instances in snapshot.services.items():
        services[key] = {
            "active": active.get(key),
            "settle_until": settle_until.get(key),
            "writing": writing.get(key),
            "last": last_summary(last.get(key)),
            "instances": {name: instance_summary(h) for name, h in instances.items()},
        }
        if quorum is not None and key in quorum:
            services[key]["quorum"] = health_summary(quorum[key])
    document: dict[str, Any] = {"updated": snapshot.at, "services": services}
    if coordination is not None:
        document["coordination"] = coordination
    return document


def service_view(health: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """One service's part of a health.json document ({} when there is none)."""
    if not health:
        return {}
    view = health.get("services", {}).get(key, {})
    return view if isinstance(view, dict) else {}


# ----------------------------------------------------------------------------- status --json


def status_document(
    config: Config,
    state: State,
    health: Mapping[str, Any] | None,
    pid: int | None,
    live: Mapping[str, tuple[RRset | None, str | None, str | None]],
    budgets: Mapping[str, Budget],
) -> dict[str, Any]:
    """`live`: per service, the record read now, its owner, and the read error (if any);
    `budgets`: each service's convergence budget."""
    services: dict[str, Any] = {}
    for key, service in config.services.items():
        record, owner, error = live[key]
        entry: dict[str, Any] = {"name": service.name, "type": service.type}
        if error is None:
            entry["live"] = describe(record)
            entry["instance"] = owner or ("(absent)" if record is None else "(foreign: drift)")
        else:
            entry["live"], entry["instance"], entry["live_error"] = None, None, error
        known = service_view(health, key) if pid is not None else {}
        entry["instances"] = {
            i.name: known.get("instances", {}).get(i.name, {"state": "unknown (no daemon)"})
            for i in service.instances
        }
        if "quorum" in known:
            entry["quorum"] = known["quorum"]
        entry["drained"] = sorted(i.name for i in service.instances if i.name in state.drains)
        pin = state.pins.get(key)
        entry["pin"] = None if pin is None else vars(pin)
        entry["last"] = known.get("last")
        entry["writing"] = known.get("writing")
        entry["flips"] = [vars(f) for f in state.flips.get(key, ())][-5:]
        entry["budget"] = budget_summary(budgets[key])
        services[key] = entry
    updated = health.get("updated") if health else None
    document = {
        "daemon": {"running": pid is not None, "pid": pid, "health_updated": updated},
        "drains": {name: vars(d) for name, d in state.drains.items()},
        "services": services,
    }
    if config.coordination is not None:
        found = health.get("coordination") if health and pid is not None else None
        document["coordination"] = found or {"site": config.coordination.site, "leader": None}
    return document
