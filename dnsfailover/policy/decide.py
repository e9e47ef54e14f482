"""`decide()`: one service, values in, a Decision with its reason out. Pure: the clock is `now`.

The rules, in the order they are applied (each is one branch below):

| situation                                   | decision                                     |
|---------------------------------------------|----------------------------------------------|
| an instance not drained is still UNKNOWN    | KEEP: health is not settled, change nothing  |
| pinned (and not drained), pin healthy       | MOVE to the pin / KEEP on it                 |
| pinned instance unhealthy and `hold`        | ALARM: keep it, say so                       |
| record absent                               | MOVE to the first healthy instance           |
| active drained                              | MOVE to the first healthy undrained one      |
| active healthy, failback manual             | KEEP (sticky)                                |
| active healthy, failback auto, a preferred  | MOVE once it passed every probe for          |
|   instance steadily healthy long enough     |   failback_after (hold-down, flip limit)     |
| active unhealthy, a healthy candidate       | MOVE (hold-down and flip limit apply)        |
| active unhealthy, no healthy candidate      | ALARM: fail-static, keep the record          |

Never MOVE to an instance that is not healthy now. A refusal is a decision too (REFUSE), with
the rule that refused it. Imports health and config values only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from dnsfailover.config.durations import human
from dnsfailover.config.models import Service
from dnsfailover.health import InstanceHealth, State


class Kind(enum.Enum):
    KEEP = "keep"  # nothing to change
    MOVE = "move"  # point the name at `target`
    REFUSE = "refuse"  # a move was wanted, a safety rule said no
    ALARM = "alarm"  # nothing can be done safely: keep the record, raise the alarm


@dataclass(frozen=True)
class Decision:
    kind: Kind
    current: str | None  # the instance the record points at now (None: absent)
    target: str | None  # where the record should point (MOVE), or would have (REFUSE)
    rule: str  # machine-readable: "sticky", "failover", "hold_down", "all_down", ...
    reason: str  # one line for an operator

    @property
    def automatic(self) -> bool:
        return self.rule in ("failover", "failback", "drain", "create")


@dataclass(frozen=True)
class PolicyInput:
    service: Service
    health: Mapping[str, InstanceHealth]  # every instance, by name
    current: str | None
    pin: str | None = None
    drained: frozenset[str] = frozenset()
    flips: tuple[float, ...] = ()  # when the name was moved recently (any cause)
    now: float = 0.0


def _state(inp: PolicyInput, name: str) -> State:
    health = inp.health.get(name)
    return State.UNKNOWN if health is None else health.state


def _healthy_candidates(inp: PolicyInput) -> list[str]:
    return [
        i.name
        for i in inp.service.instances
        if i.name not in inp.drained and _state(inp, i.name) is State.HEALTHY
    ]


def _rate_limited(inp: PolicyInput, current: str | None, target: str, rule: str) -> Decision:
    """MOVE, unless hold-down or the flips-per-hour limit forbid another automatic flip."""
    service = inp.service
    if inp.flips:
        since_last = inp.now - max(inp.flips)
        if since_last < service.hold_down:
            return Decision(
                Kind.REFUSE,
                current,
                target,
                "hold_down",
                f"{rule} to {target} refused: last flip {human(since_last)} ago, "
                f"inside hold_down {human(service.hold_down)}",
            )
    recent = [t for t in inp.flips if inp.now - t < 3600]
    if len(recent) >= service.max_flips_per_hour:
        return Decision(
            Kind.REFUSE,
            current,
            target,
            "flip_limit",
            f"{rule} to {target} refused: {len(recent)} flips in the last hour "
            f"(max_flips_per_hour {service.max_flips_per_hour})",
        )
    return Decision(Kind.MOVE, current, target, rule, _why(inp, current, target, rule))


def _why(inp: PolicyInput, current: str | None, target: str, rule: str) -> str:
    if rule == "failback":
        return (
            f"failback to preferred {target}: passed every probe for "
            f"{human(inp.service.failback_after)}"
        )
    if rule == "drain":
        return f"{current} is drained: moving to {target}"
    if rule == "create":
        return f"record absent: creating it for {target}"
    health = inp.health.get(current or "")
    detail = f" ({health.reason})" if health is not None else ""
    return f"{current} unhealthy{detail}: moving to {target}"


def decide(inp: PolicyInput) -> Decision:
    current = inp.current
    unsettled = [
        i.name
        for i in inp.service.instances
        if i.name not in inp.drained and _state(inp, i.name) is State.UNKNOWN
    ]
    if unsettled:
        return Decision(
            Kind.KEEP,
            current,
            None,
            "unknown",
            f"health not settled yet for {', '.join(unsettled)}: changing nothing",
        )
    candidates = _healthy_candidates(inp)

    if inp.pin is not None:
        pinned = _decide_pinned(inp, candidates)
        if pinned is not None:
            return pinned

    if current is None:
        if not candidates:
            return Decision(
                Kind.ALARM,
                None,
                None,
                "all_down",
                "record absent and no healthy instance to create it for",
            )
        return Decision(
            Kind.MOVE, None, candidates[0], "create", _why(inp, None, candidates[0], "create")
        )

    if current in inp.drained:
        if not candidates:
            return Decision(
                Kind.ALARM,
                current,
                None,
                "all_down",
                f"{current} is drained but no other instance is healthy: keeping it",
            )
        return Decision(
            Kind.MOVE, current, candidates[0], "drain", _why(inp, current, candidates[0], "drain")
        )

    if _state(inp, current) is State.HEALTHY:
        return _decide_healthy(inp, current, candidates)

    if not candidates:
        return Decision(
            Kind.ALARM,
            current,
            None,
            "all_down",
            f"{current} is unhealthy and no instance is healthy: fail-static, "
            "keeping the record as it is",
        )
    return _rate_limited(inp, current, candidates[0], "failover")


def _decide_pinned(inp: PolicyInput, candidates: list[str]) -> Decision | None:
    """None when the pin does not decide (its instance is unhealthy and policy may fail over)."""
    pin, current = inp.pin, inp.current
    assert pin is not None
    if pin in inp.drained:
        return None  # maintenance wins over a pin: a drained instance is never chosen
    healthy = _state(inp, pin) is State.HEALTHY
    if healthy and current == pin:
        return Decision(Kind.KEEP, current, pin, "pinned", f"pinned to {pin}")
    if healthy:
        return Decision(
            Kind.MOVE,
            current,
            pin,
            "pin",
            f"pinned to {pin}, but the record points at {current or '(absent)'}",
        )
    if inp.service.pin_unhealthy == "hold":
        return Decision(
            Kind.ALARM,
            current,
            pin,
            "pin_unhealthy",
            f"pinned to {pin}, which is unhealthy; pin_unhealthy is hold: release "
            "the pin to let automatic failover act",
        )
    return None


def _decide_healthy(inp: PolicyInput, current: str, candidates: list[str]) -> Decision:
    service = inp.service
    if service.failback == "auto" and candidates:
        order = [i.name for i in service.instances]
        preferred = candidates[0]
        if order.index(preferred) < order.index(current):
            # Steady health, not just HEALTHY: an instance failing one probe in five stays
            # HEALTHY under `fall`, and failing back to it would move the name to and fro.
            passing_since = inp.health[preferred].passing_since
            steady_for = inp.now - (passing_since if passing_since is not None else inp.now)
            if steady_for >= service.failback_after:
                return _rate_limited(inp, current, preferred, "failback")
            return Decision(
                Kind.KEEP,
                current,
                None,
                "failback_wait",
                f"{current} healthy; preferred {preferred} has passed every probe for "
                f"{human(steady_for)} of {human(service.failback_after)}",
            )
    return Decision(Kind.KEEP, current, None, "sticky", f"{current} healthy")
