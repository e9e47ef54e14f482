"""Plan: from a decision and the live RRset to the one Change a provider should apply.

Pure. Knows what each instance's record looks like, which instance a live record belongs to
(or that it belongs to none: drift), the TTL the record should carry now (`record_ttl`), and
refuses anything unsafe: a target outside the service, a delete, a name other than the
service's own. A decision that keeps the instance may still change the TTL (`degraded_ttl`
on and off): that is a compare-and-swap change of its own, never a flip.
Imports config, health and policy values only; never a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from dnsfailover.config.models import Instance, Service
from dnsfailover.errors import DnsFailoverError
from dnsfailover.health import InstanceHealth, State
from dnsfailover.policy import Decision, Kind
from dnsfailover.rrset import Change, RRset, describe


class UnsafePlan(DnsFailoverError):
    """The plan breaks a safety rule and was not applied."""


def instance_rrset(service: Service, instance: Instance, ttl: int | None = None) -> RRset:
    """The record the service's name holds while it points at `instance`."""
    ttl = service.ttl if ttl is None else ttl
    if service.type == "CNAME":
        assert instance.target is not None
        return RRset.of(service.name, "CNAME", ttl, [instance.target])
    return RRset.of(service.name, service.type, ttl, [str(a) for a in instance.addresses])


def record_ttl(
    service: Service,
    decision: Decision,
    health: Mapping[str, InstanceHealth],
    flips: Sequence[float],
    now: float,
) -> int | None:
    """The TTL to write: `degraded_ttl` for a flip now, while the active instance is
    unhealthy, and for hold_down after a flip; the normal TTL otherwise (always, without
    `degraded_ttl`). None: leave the live TTL as it is (the active's health is not known yet)."""
    if decision.kind is Kind.MOVE:
        return service.ttl if service.degraded_ttl is None else service.degraded_ttl
    active = health.get(decision.current or "")
    if active is None or active.state is State.UNKNOWN:
        return None
    if service.degraded_ttl is None:
        return service.ttl
    if active.state is State.UNHEALTHY:
        return service.degraded_ttl
    if flips and now - max(flips) < service.hold_down:
        return service.degraded_ttl
    return service.ttl


def owner_of(service: Service, live: RRset | None) -> str | None:
    """The instance whose record `live` is (TTL aside); None when absent or foreign."""
    if live is None:
        return None
    for instance in service.instances:
        if instance_rrset(service, instance).values == live.values:
            return instance.name
    return None


@dataclass(frozen=True)
class Plan:
    service: str
    decision: Decision
    change: Change | None  # None: nothing to write

    @property
    def ttl_only(self) -> bool:
        """The record keeps its values; only its TTL changes (degraded_ttl on or off)."""
        change = self.change
        return change is not None and change.after.same_data(change.before)

    def summary(self) -> str:
        if self.change is None:
            return f"{self.service}: no change ({self.decision.reason})"
        return f"{self.service}: {self.change.summary()} ({self.decision.reason})"


def make_plan(
    key: str, service: Service, decision: Decision, live: RRset | None, ttl: int | None = None
) -> Plan:
    """The change `decision` needs against `live`; `ttl` is the TTL the record should carry
    (`record_ttl`; None: a moved record gets the service's, a kept one keeps its own). A kept
    record whose TTL differs is given the right one."""
    if live is not None and (live.name != service.name or live.rdtype != service.type):
        raise UnsafePlan(f"{key}: live record {live.name} {live.rdtype} is not {service.name}")
    if decision.kind is not Kind.MOVE:
        kept = owner_of(service, live)
        if live is None or ttl is None or kept is None or kept != decision.current:
            return Plan(key, decision, None)
        if live.ttl == ttl:
            return Plan(key, decision, None)
        return Plan(key, decision, Change(live, replace(live, ttl=ttl)))
    ttl = service.ttl if ttl is None else ttl
    by_name = {i.name: i for i in service.instances}
    if decision.target not in by_name:
        raise UnsafePlan(f"{key}: {decision.target!r} is not an instance of the service")
    after = instance_rrset(service, by_name[decision.target], ttl)
    if live is not None and live.values == after.values and live.ttl == after.ttl:
        return Plan(key, decision, None)  # already there
    return Plan(key, decision, Change(live, after))


def drift_reason(service: Service, live: RRset | None) -> str:
    return f"{service.name} {service.type} holds {describe(live)}, which is no instance's record"
