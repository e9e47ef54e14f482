"""Practice runs: the run's value, its gates and its schedule. Pure: the clock is `now`.

A practice run (docs/practice-runs.md) moves a service's name to another healthy instance on
purpose, for a while, and back — an exercise of the failover path before an incident does it.
It is no new path: its two moves are intents (`Origin.PRACTICE`, report.py) through the one
pipeline, and its life is part of the service's record (machine.py). This module owns what is
particular to it:

- `Run`: one run's value — who asked, where to, its phase and outcome, its timeline (both
  switches: decided, written, served everywhere, verified as a client) and the operator's
  commands' results; it is saved in the state directory before its first write.
- `refusal()`: the gates that need the live record and health (evaluated in the pipeline's
  prepare step); the machine adds "nothing in flight or unconfirmed".
- `window_refusal()`, `due()`, `default_target()`: windows and blocked dates (UTC), the
  schedule, the target when none is named.

| gate (in order) | refuses when |
|---|---|
| target | the name is absent, on no instance, or already on the target |
| pin | the service is pinned (a run is not a pin, and a pin would not let it return) |
| drain | the target is drained |
| health | the active or the target is not HEALTHY: unhealthy, unsettled or not decided yet |
| hold_down | the last flip (not a practice move) is younger than `hold_down` |
| window | a blocked date, outside the allowed windows, in a blocked one (`--ignore-window`) |

Imports config and health values only.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dnsfailover.config.durations import human
from dnsfailover.config.models import PracticeSettings, Service
from dnsfailover.config.windows import utc_date
from dnsfailover.health import InstanceHealth, State

RULES = ("practice", "practice_return")  # a run's two moves: no hold-down, no flip limit
RETRY_SCHEDULE = 900.0  # a scheduled run refused by a gate is tried again after this
CHECK_EVERY = 60.0  # while a run is on, its blocking command runs again this often


class Phase(enum.Enum):
    STARTING = "starting"  # asked; the move is being decided or written
    ON = "on"  # the name is on the target (or being confirmed there)
    RETURNING = "returning"  # the return is being decided or written
    ENDED = "ended"


class Outcome(enum.Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    INTERRUPTED = "INTERRUPTED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUSED = "REFUSED"  # a gate said no: the run never started


class Ask(enum.Enum):
    START = "start"
    RETURN = "return"
    CANCEL = "cancel"
    CHECK = "check"  # the blocking command again, while the run is on


@dataclass(frozen=True)
class Practice:
    """What a practice intent asks (carried by `Intent.practice`)."""

    run: str  # the run's id
    ask: Ask = Ask.START
    duration: float = 1800.0
    ignore_window: bool = False
    scheduled: bool = False
    check: bool = False  # RETURN: run the outcome command first (the run's timed end)


@dataclass(frozen=True)
class CommandResult:
    """One run of the operator's outcome or blocking command."""

    name: str  # outcome_command | blocking_command
    when: str  # before_start, after_move, before_return
    passed: bool
    exit: int | None  # None: killed at its timeout, or it could not start
    lines: tuple[str, ...]  # its last lines of output
    seconds: float

    def summary(self) -> str:
        state = "passed" if self.passed else f"failed (exit {self.exit})"
        tail = f": {self.lines[-1]}" if self.lines else ""
        return f"{self.name} {state} {self.when}{tail}"


@dataclass(frozen=True)
class Run:
    id: str
    target: str | None  # None until decided (the next healthy instance)
    reason: str
    duration: float
    requested_at: float
    scheduled: bool = False
    origin: str | None = None  # the instance the name returns to
    phase: Phase = Phase.STARTING
    outcome: Outcome = Outcome.PENDING
    why: str = ""
    ends_at: float | None = None
    next_check: float | None = None  # on: when the blocking command runs again
    ended_at: float | None = None
    cancel: bool = False  # asked to end now
    failed: str | None = None  # a check failed: the run ends FAILED once back
    timeline: tuple[tuple[str, float], ...] = ()  # ("go.decided", t), ("back.served", t) ...
    checks: tuple[CommandResult, ...] = ()
    # What the probes said when each switch was decided (and when a change ended the run):
    # (step, ((instance, state, reason), ...)).
    health: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = ()

    @property
    def on(self) -> bool:
        return self.phase is not Phase.ENDED

    def mark(self, what: str, now: float) -> Run:
        return replace(self, timeline=(*self.timeline, (what, now)))

    def saw(self, step: str, health: Mapping[str, InstanceHealth]) -> Run:
        seen = tuple((h.name, h.state.value, h.reason) for h in health.values())
        return replace(self, health=(*self.health, (step, seen)))

    def checked(self, results: tuple[CommandResult, ...]) -> Run:
        # A report carries its checks through its steps: each result is kept once.
        results = tuple(r for r in results if not any(r is c for c in self.checks))
        run = replace(self, checks=(*self.checks, *results))
        failed = next((r for r in results if not r.passed), None)
        if failed is not None and run.failed is None:
            run = replace(run, failed=failed.summary())
        return run

    def end(self, outcome: Outcome, why: str, now: float) -> Run:
        if self.failed is not None and outcome in (Outcome.SUCCEEDED, Outcome.CANCELLED):
            outcome, why = Outcome.FAILED, self.failed
        return replace(self, phase=Phase.ENDED, outcome=outcome, why=why, ended_at=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "origin": self.origin,
            "reason": self.reason,
            "duration": self.duration,
            "requested_at": self.requested_at,
            "scheduled": self.scheduled,
            "phase": self.phase.value,
            "outcome": self.outcome.value,
            "why": self.why,
            "ends_at": self.ends_at,
            "next_check": self.next_check,
            "ended_at": self.ended_at,
            "cancel": self.cancel,
            "failed": self.failed,
            "timeline": [{"step": s, "at": t} for s, t in self.timeline],
            "checks": [vars(c) | {"lines": list(c.lines)} for c in self.checks],
            "health": [
                {"step": step, "instances": {n: {"state": s, "reason": r} for n, s, r in seen}}
                for step, seen in self.health
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Run:
        """A run read back: a file in the state directory, or — with several controllers — a
        report in etcd's shared document, from outside. Every field is checked for its type
        (times finite numbers, names strings) before anything computes with it: TypeError,
        ValueError or KeyError otherwise."""
        checks = tuple(_check(c) for c in _items(data["checks"]))
        return cls(
            _text(data["id"]), _maybe_text(data["target"]), _text(data["reason"]),
            _number(data["duration"]), _number(data["requested_at"]), _flag(data["scheduled"]),
            _maybe_text(data["origin"]), Phase(data["phase"]), Outcome(data["outcome"]),
            _text(data["why"]), _maybe_number(data["ends_at"]),
            _maybe_number(data.get("next_check")), _maybe_number(data["ended_at"]),
            _flag(data["cancel"]), _maybe_text(data["failed"]),
            tuple((_text(t["step"]), _number(t["at"])) for t in _items(data["timeline"])), checks,
            tuple((_text(h["step"]), tuple((_text(n), _text(i["state"]), _text(i["reason"]))
                                           for n, i in _mapping(h["instances"]).items()))
                  for h in _items(data.get("health", ()))),
        )  # fmt: skip


def _check(c: Any) -> CommandResult:
    exit = None if c["exit"] is None else int(_number(c["exit"]))
    lines = tuple(_text(line) for line in _items(c["lines"]))
    return CommandResult(_text(c["name"]), _text(c["when"]), _flag(c["passed"]), exit, lines,
                         _number(c["seconds"]))  # fmt: skip


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a string expected, not {type(value).__name__}")
    return value


def _maybe_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"a finite number expected, not {value!r:.40}")
    return float(value)


def _maybe_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"true or false expected, not {type(value).__name__}")
    return value


def _mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"a mapping expected, not {type(value).__name__}")
    return value


def _items(value: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"a list expected, not {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class GateInput:
    service: Service
    health: Mapping[str, InstanceHealth]
    active: str | None  # the instance the live record points at
    target: str | None  # asked for (None: the next healthy instance)
    pin: str | None = None
    drained: frozenset[str] = frozenset()
    flips: tuple[float, ...] = ()  # flips that count for hold-down (not practice moves)
    now: float = 0.0
    ignore_window: bool = False
    extra: tuple[str, ...] = field(default=())  # more refusals found by the caller


def _state(inp: GateInput, name: str | None) -> State:
    found = inp.health.get(name or "")
    return State.UNKNOWN if found is None else found.state


def default_target(inp: GateInput) -> str | None:
    """The next HEALTHY undrained instance after the active one, in preference order."""
    names = [i.name for i in inp.service.instances]
    start = names.index(inp.active) + 1 if inp.active in names else 0
    for name in names[start:] + names[:start]:
        if name != inp.active and name not in inp.drained and _state(inp, name) is State.HEALTHY:
            return name
    return None


def refusal(inp: GateInput) -> tuple[str, str] | None:
    """(gate, reason) of the first gate that refuses a run, or None: it may start."""
    target = inp.target or default_target(inp)
    if inp.active is None:
        return "target", "the record is absent or points at no instance of the service"
    if target is None:
        return "health", f"no other instance is healthy to practise on (active {inp.active})"
    if target == inp.active:
        return "target", f"the name is already on {target}"
    if inp.pin is not None:
        return "pin", f"pinned to {inp.pin}: release the pin first (a run is not a pin)"
    if target in inp.drained:
        return "drain", f"{target} is drained"
    for role, name in (("active", inp.active), ("target", target)):
        state = _state(inp, name)
        if state is not State.HEALTHY:
            found = inp.health.get(name)
            why = f" ({found.reason})" if found is not None and found.reason else ""
            return "health", f"{role} {name} is {state.value}{why}: no run during an incident"
    if inp.flips and inp.now - max(inp.flips) < inp.service.hold_down:
        since = inp.now - max(inp.flips)
        return "hold_down", (
            f"last flip {human(since)} ago, inside hold_down {human(inp.service.hold_down)}"
        )
    practice = inp.service.practice
    if practice is not None and not inp.ignore_window:
        window = window_refusal(practice, inp.now)
        if window is not None:
            return "window", window
    if inp.extra:
        return "check", inp.extra[0]
    return None


def window_refusal(practice: PracticeSettings, now: float) -> str | None:
    """Why `now` (UTC) is not a time for a run, or None."""
    today = utc_date(now)
    if today in practice.blocked_dates:
        return f"{today.isoformat()} is a blocked date"
    if practice.allowed_windows and not any(w.contains(now) for w in practice.allowed_windows):
        return f"outside the allowed windows ({', '.join(map(str, practice.allowed_windows))})"
    for window in practice.blocked_windows:
        if window.contains(now):
            return f"inside the blocked window {window}"
    return None


def due(
    practice: PracticeSettings, last_started: float | None, last_try: float | None, now: float
) -> bool:
    """A scheduled run is due: `every` since the last run started (or never ran), inside a
    window, and not refused in the last `RETRY_SCHEDULE` (a gate's refusal is not retried
    every tick)."""
    if practice.every is None:
        return False
    if last_started is not None and now - last_started < practice.every:
        return False
    if last_try is not None and now - last_try < RETRY_SCHEDULE:
        return False
    return window_refusal(practice, now) is None
