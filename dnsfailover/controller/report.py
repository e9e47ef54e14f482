"""A change's report: one plain value that travels the pipeline and is filled in by its steps.

An intent (what asked for the change) starts it; `prepare` fills the decision and the plan,
`write` the receipt and timings, `confirm` the propagation, `verify` what a client saw; the
journal turns it into the audit entry, the metrics and the notification. `event` and `outcome`
are the names operators see (audit log, metrics, hooks), decided here and only here.
Imports values only (policy, plan, providers' value types, verification); does no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from dnsfailover.controller.practice import RULES as PRACTICE_RULES
from dnsfailover.controller.practice import CommandResult, Practice
from dnsfailover.controller.verify import Verification
from dnsfailover.health import InstanceHealth
from dnsfailover.plan import Plan
from dnsfailover.policy import Decision, Kind
from dnsfailover.providers import Propagation, Receipt
from dnsfailover.rrset import RRset


class Origin(enum.Enum):
    """Who asked for a change. Every origin takes the same pipeline."""

    POLICY = "policy"  # health changed, a tick, a retry: the policy decides
    OPERATOR = "operator"  # `failover --to` (here, or a request carried out by the leader)
    PRACTICE = "practice"  # a practice run's move, or its return (practice.py)


@dataclass(frozen=True)
class Intent:
    """What a change is for: the policy's decision, or an operator's move with its reason."""

    origin: Origin = Origin.POLICY
    to: str | None = None  # OPERATOR: the instance to move to
    reason: str = ""
    request: str | None = None  # a shared failover request this carries out (shared.py)
    trigger_at: float | None = None  # when the probe result that asked for it finished
    practice: Practice | None = None  # PRACTICE: the run, and what it asks
    id: str | None = None  # a control socket request waiting for this change (control.py)

    def manual(self) -> Decision | None:
        if self.origin is not Origin.OPERATOR:
            return None
        return Decision(Kind.MOVE, None, self.to, "manual", self.reason)


@dataclass
class Report:
    """What one change did, step by step; the controller turns it into status, metrics and
    events."""

    service: str
    intent: Intent = field(default_factory=Intent)
    health: Mapping[str, InstanceHealth] = field(default_factory=dict)  # behind the decision
    decision: Decision | None = None
    live: RRset | None = None
    plan: Plan | None = None
    change: str | None = None
    applied: bool = False
    dry_run: bool = False
    drift: bool = False
    conflicts: int = 0  # conflicts met so far by this service's changes in a row
    conflict: bool = False  # the last write attempt met a conflict
    transient: bool = False  # the error may go away on its own (SERVFAIL, a timeout)
    abandoned: bool = False  # the daemon stopped before the write finished
    error: str | None = None
    pending: str | None = None  # a change wanted but not written (the provider failed)
    receipt: Receipt | None = None
    write_seconds: float | None = None
    propagation: Propagation | None = None
    # Wall-clock time when the provider acknowledged the write (the trigger's is the intent's),
    # so failover time can be measured from the outside.
    write_acked_at: float | None = None
    verification: Verification | None = None  # the flip, as a client sees it (verify.py)
    # Several controllers: the leader's site and the fencing token this write carries, and
    # whether the DNS refused it because a newer leader's token holds the fence.
    site: str | None = None
    fence: int | None = None
    refused_by_fence: bool = False
    checks: list[CommandResult] = field(default_factory=list)  # a practice run's commands

    @property
    def trigger_at(self) -> float | None:
        return self.intent.trigger_at

    @property
    def request(self) -> str | None:
        return self.intent.request

    @property
    def is_flip(self) -> bool:
        """A move of the name to another instance (not a TTL-only change): hold-down and the
        flip rate count it, and a client verifies it."""
        decision = self.decision
        return (
            decision is not None
            and decision.kind is Kind.MOVE
            and decision.target is not None
            and not (self.plan is not None and self.plan.ttl_only)
        )

    @property
    def served(self) -> bool:
        return self.propagation is not None and self.propagation.complete

    @property
    def flipped(self) -> bool:
        """A move was written and every authoritative server serves it."""
        return self.applied and self.is_flip and self.served

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
        if self.refused_by_fence:
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
            if self.decision.rule in PRACTICE_RULES:
                return self.decision.rule
            return "manual" if self.decision.rule == "manual" else "failover"
        return {Kind.REFUSE: "refusal", Kind.ALARM: "all_down"}.get(self.decision.kind, "keep")

    @property
    def outcome(self) -> str:
        """applied, applied_unconfirmed (written, not yet served everywhere), abandoned (the
        daemon stopped before the write landed), dry_run, failed or not_applied."""
        if self.applied:
            return "applied" if self.served else "applied_unconfirmed"
        if self.abandoned:
            return "abandoned"
        if self.dry_run:
            return "dry_run"
        return "failed" if self.error else "not_applied"
