"""Plan: from a decision and the live RRset to the one Change a provider should apply.

Pure. Knows what each instance's record looks like, which instance a live record belongs to
(or that it belongs to none: drift), and refuses anything unsafe: a target outside the
service, a delete, a name other than the service's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnsfailover.config.models import Instance, Service
from dnsfailover.errors import DnsFailoverError
from dnsfailover.policy import Decision, Kind
from dnsfailover.rrset import Change, RRset, describe


class UnsafePlan(DnsFailoverError):
    """The plan breaks a safety rule and was not applied."""


def instance_rrset(service: Service, instance: Instance) -> RRset:
    """The record the service's name holds while it points at `instance`."""
    if service.type == "CNAME":
        assert instance.target is not None
        return RRset.of(service.name, "CNAME", service.ttl, [instance.target])
    return RRset.of(service.name, service.type, service.ttl, [str(a) for a in instance.addresses])


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

    def summary(self) -> str:
        if self.change is None:
            return f"{self.service}: no change ({self.decision.reason})"
        return f"{self.service}: {self.change.summary()} ({self.decision.reason})"


def make_plan(key: str, service: Service, decision: Decision, live: RRset | None) -> Plan:
    if decision.kind is not Kind.MOVE:
        return Plan(key, decision, None)
    by_name = {i.name: i for i in service.instances}
    if decision.target not in by_name:
        raise UnsafePlan(f"{key}: {decision.target!r} is not an instance of the service")
    after = instance_rrset(service, by_name[decision.target])
    if live is not None and (live.name != service.name or live.rdtype != service.type):
        raise UnsafePlan(f"{key}: live record {live.name} {live.rdtype} is not {service.name}")
    if live is not None and live.values == after.values and live.ttl == after.ttl:
        return Plan(key, decision, None)  # already there
    return Plan(key, decision, Change(live, after))


def drift_reason(service: Service, live: RRset | None) -> str:
    return f"{service.name} {service.type} holds {describe(live)}, which is no instance's record"
