"""`decide()`: one service, values in, a Decision with its reason out. Pure: the clock is `now`.

Health of an instance is HEALTHY, UNHEALTHY or UNKNOWN (not settled: too few results for rise
or fall, or results that never complete a streak). The rules, in the order they are applied
(each is one branch below); "healthy candidates" are the undrained HEALTHY instances, in list
order, and an instance that is not HEALTHY is never one:

| situation                                         | decision                                  |
|---------------------------------------------------|-------------------------------------------|
| a practice run on its target, target healthy and  | KEEP (practice): pins and failback wait;  |
|   undrained, record on it                         |   else the rules below, pins ignored      |
| pinned (not drained), pin healthy, record on it   | KEEP (pinned)                             |
| pinned, pin healthy, record elsewhere             | MOVE to the pin; hold-down and the flip   |
|                                                   |   limit apply only if the active is       |
|                                                   |   healthy (never keep a dead instance)    |
| pinned instance not healthy, `hold`               | ALARM: keep the record, say so            |
| record absent                                     | MOVE to the first healthy candidate       |
| active drained                                    | MOVE to the first healthy candidate       |
| active healthy, failback manual                   | KEEP (sticky)                             |
| active held by the sites' quorum (split, or too   | KEEP (quorum_held): one site's view never |
|   few fresh verdicts; several controllers only)   |   moves the name                          |
| active healthy, failback auto, a preferred        | MOVE once it passed every probe for       |
|   instance steadily healthy long enough           |   failback_after (hold-down, flip limit)  |
| active not healthy, a healthy candidate           | MOVE at once: never refused; a high flip  |
|                                                   |   rate is a warning on the decision       |
| no healthy candidate where one is needed          | ALARM: fail-static, keep the record       |

The settle window (`settle_until`, after start-up or a reload; see `Checks.settle_window`):
before it ends, a decision that would change something waits (KEEP, rule `unknown`) only if an
UNKNOWN undrained instance could change it: the active or the pin is UNKNOWN, or an UNKNOWN
instance is preferred over the target, or there is no healthy candidate yet. So a dead active
with a healthy candidate preferred over every unknown one moves at once. From the end of the
window on, UNKNOWN counts as not healthy: never a candidate, never a reason to wait — a standby
that flaps or only errors cannot pin the name to a dead active.

Hold-down and `max_flips_per_hour` limit moves away from an active that is still healthy
(failback, a pin pulling the name back): a refusal is a decision too (REFUSE, with its rule).
Leaving an unhealthy active for a healthy candidate is always allowed; flapping on that path is
bounded by rise/fall, and a high flip rate raises the alarm (`Decision.warning`) instead.
Imports health and config values only.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from dnsfailover.config.durations import human
from dnsfailover.config.models import Service
from dnsfailover.health import InstanceHealth, State

HOUR = 3600.0


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
    warning: str | None = None  # an alarm that does not stop the decision (flip rate)

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
    settle_until: float = -math.inf  # before this, an UNKNOWN instance may make a change wait
    practice: str | None = None  # a practice run's target, while the run is on (not a pin)


def _state(inp: PolicyInput, name: str | None) -> State:
    health = inp.health.get(name or "")
    return State.UNKNOWN if health is None else health.state


def _healthy(inp: PolicyInput, name: str | None) -> bool:
    return _state(inp, name) is State.HEALTHY


def _candidates(inp: PolicyInput) -> list[str]:
    return [
        i.name for i in inp.service.instances if i.name not in inp.drained and _healthy(inp, i.name)
    ]


def decide(inp: PolicyInput) -> Decision:
    decision = _decide(inp)
    if inp.now < inp.settle_until and decision.kind is not Kind.KEEP:
        waiting = _worth_waiting_for(inp, decision)
        if waiting:
            return Decision(
                Kind.KEEP,
                inp.current,
                None,
                "unknown",
                f"health not settled yet for {', '.join(waiting)}: waiting up to "
                f"{human(inp.settle_until - inp.now)} more before acting on it",
            )
    return decision


def _worth_waiting_for(inp: PolicyInput, decision: Decision) -> list[str]:
    """The UNKNOWN undrained instances whose health could still change `decision`."""
    order = [i.name for i in inp.service.instances]
    unknown = [n for n in order if n not in inp.drained and _state(inp, n) is State.UNKNOWN]
    if not unknown:
        return []
    if inp.current in unknown or inp.pin in unknown or decision.target is None:
        return unknown
    return [n for n in unknown if order.index(n) < order.index(decision.target)]


def _decide(inp: PolicyInput) -> Decision:
    current = inp.current
    candidates = _candidates(inp)

    if inp.practice is not None:
        # A run is not a pin: a real failure of its target always wins (the rules below).
        if current == inp.practice and inp.practice in candidates:
            return Decision(Kind.KEEP, current, None, "practice", f"practice run on {current}")
    elif inp.pin is not None:
        pinned = _decide_pinned(inp)
        if pinned is not None:
            return pinned

    if current is None:
        if not candidates:
            return _all_down(None, "record absent and no healthy instance to create it for")
        target = candidates[0]
        return _move(inp, target, "create", f"record absent: creating it for {target}")

    if current in inp.drained:
        if not candidates:
            return _all_down(
                current, f"{current} is drained but no other instance is healthy: keeping it"
            )
        target = candidates[0]
        return _move(inp, target, "drain", f"{current} is drained: moving to {target}")

    if _healthy(inp, current):
        return _decide_healthy(inp, current, candidates)

    held = inp.health.get(current or "")
    if held is not None and held.held:
        return Decision(Kind.KEEP, current, None, "quorum_held",
                        f"{current} kept: {held.reason}")  # fmt: skip

    if not candidates:
        return _all_down(
            current,
            f"{current} is {_state(inp, current).value} and no instance is healthy: "
            "fail-static, keeping the record as it is",
        )
    health = inp.health.get(current)
    detail = f" ({health.reason})" if health is not None else ""
    not_healthy = "unhealthy" if _state(inp, current) is State.UNHEALTHY else "not known healthy"
    target = candidates[0]
    return _move(inp, target, "failover", f"{current} {not_healthy}{detail}: moving to {target}")


def _all_down(current: str | None, reason: str) -> Decision:
    return Decision(Kind.ALARM, current, None, "all_down", reason)


def _move(inp: PolicyInput, target: str, rule: str, reason: str) -> Decision:
    """MOVE away from an active that is not healthy (or drained, or absent): never refused."""
    recent = [t for t in inp.flips if inp.now - t < HOUR]
    warning = None
    if len(recent) >= inp.service.max_flips_per_hour:
        warning = (
            f"flip rate high: {len(recent)} flips in the last hour "
            f"(max_flips_per_hour {inp.service.max_flips_per_hour}); moving anyway, since "
            "leaving an instance that is not healthy is never refused"
        )
    return Decision(Kind.MOVE, inp.current, target, rule, reason, warning)


def _rate_limited(inp: PolicyInput, target: str, rule: str, reason: str) -> Decision:
    """MOVE away from a healthy active, unless hold-down or the flip limit forbid it now."""
    service, current = inp.service, inp.current
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
    recent = [t for t in inp.flips if inp.now - t < HOUR]
    if len(recent) >= service.max_flips_per_hour:
        return Decision(
            Kind.REFUSE,
            current,
            target,
            "flip_limit",
            f"{rule} to {target} refused: {len(recent)} flips in the last hour "
            f"(max_flips_per_hour {service.max_flips_per_hour})",
        )
    return Decision(Kind.MOVE, current, target, rule, reason)


def _decide_pinned(inp: PolicyInput) -> Decision | None:
    """None when the pin does not decide (drained, or unhealthy and policy may fail over)."""
    pin, current = inp.pin, inp.current
    assert pin is not None
    if pin in inp.drained:
        return None  # maintenance wins over a pin: a drained instance is never chosen
    if _healthy(inp, pin):
        if current == pin:
            return Decision(Kind.KEEP, current, pin, "pinned", f"pinned to {pin}")
        reason = f"pinned to {pin}, but the record points at {current or '(absent)'}"
        if _healthy(inp, current) and current not in inp.drained:
            return _rate_limited(inp, pin, "pin", reason)  # a pull back, not an escape
        return _move(inp, pin, "pin", reason)
    if inp.service.pin_unhealthy == "hold":
        return Decision(
            Kind.ALARM,
            current,
            pin,
            "pin_unhealthy",
            f"pinned to {pin}, which is {_state(inp, pin).value}; pin_unhealthy is hold: "
            "release the pin to let automatic failover act",
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
                reason = (
                    f"failback to preferred {preferred}: passed every probe for "
                    f"{human(service.failback_after)}"
                )
                return _rate_limited(inp, preferred, "failback", reason)
            return Decision(
                Kind.KEEP,
                current,
                None,
                "failback_wait",
                f"{current} healthy; preferred {preferred} has passed every probe for "
                f"{human(steady_for)} of {human(service.failback_after)}",
            )
    return Decision(Kind.KEEP, current, None, "sticky", f"{current} healthy")
