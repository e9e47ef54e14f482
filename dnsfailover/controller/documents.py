"""The daemon's view as documents: `health.json` (rewritten when health changes and every
cycle), the `status --json` document (built from the state, `health.json` and live reads), and
the one-line status systemd shows. Audit entries are the journal's (journal.py).

Field names here are the contract with operators' tooling (`jq`, the runbook), so they change
only here. No secret ever reaches these values: they are built from decisions, records and
probe results, never from settings. Imports values only (health, plan budget, rrset, the
report and flight values, the journal's health summary): no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dnsfailover.controller.journal import health_summary
from dnsfailover.controller.report import Report
from dnsfailover.controller.workers import Flight
from dnsfailover.health import HealthSnapshot, InstanceHealth
from dnsfailover.plan.budget import Budget
from dnsfailover.rrset import RRset, describe

if TYPE_CHECKING:
    from dnsfailover.config.models import Config
    from dnsfailover.controller.state import SavedState


# ----------------------------------------------------------------------------- health.json


def budget_summary(budget: Budget) -> dict[str, Any]:
    return {"seconds": budget.parts(), "text": budget.text()}


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


def writing_summary(
    unconfirmed: Mapping[str, Report], flights: list[Flight], now: float
) -> dict[str, dict[str, Any]]:
    """Changes in flight and changes not yet confirmed, per service (health.json)."""
    found: dict[str, dict[str, Any]] = {}
    for service, report in unconfirmed.items():
        propagation = report.propagation.summary() if report.propagation else None
        found[service] = {"kind": "unconfirmed", "change": report.change,
                          "propagation": propagation}  # fmt: skip
    for flight in flights:
        report = flight.payload
        found[flight.service] = {
            "kind": flight.kind.value,
            "change": report.change if isinstance(report, Report) else None,
            "seconds": round(flight.age(now), 1),
            "timeout": flight.timeout,
            "overdue": flight.overdue(now),
        }
    return found


def status_line(
    services: list[str],
    active: Mapping[str, str | None],
    last: Mapping[str, Report],
    busy: set[str],
) -> str:
    """What systemd shows: `service→instance (event) (writing)` for each service."""
    parts = []
    for service in services:
        report = last.get(service)
        note = f" ({report.event})" if report and report.event not in ("keep", "none") else ""
        if service in busy:
            note += " (writing)"
        parts.append(f"{service}→{active.get(service) or '?'}{note}")
    return ", ".join(parts)


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
    state: SavedState,
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
