"""Rise/fall hysteresis (as in HAProxy and anycast-healthchecker).

A check starts UNKNOWN. `rise` consecutive successes make it HEALTHY; `fall` consecutive
failures make it UNHEALTHY; from UNKNOWN, whichever streak completes first decides. An
OVERLOADED result (alive, shedding load) and an ERROR result (the probe's own trouble) change
no streak: they neither raise nor lower health by themselves. An instance is HEALTHY when all
its required checks are; UNHEALTHY when any required check is; UNKNOWN otherwise.
Informational checks are reported and never decide.

Apart from the state, each check keeps `passing_since`: when its current run of passing results
began (None after a failure). A check can stay HEALTHY while failing one probe in five, below
`fall` in a row; `passing_since` tells steady health from that, and failback asks for it.

A check that never completes a streak (alternating pass/fail with rise and fall above 1, or
only ERROR/OVERLOADED results) stays UNKNOWN for ever. It keeps its last RECENT outcomes and
when its first result came, so its reason says so ("unsettled for 10m: 5 of the last 10 probes
failed"): the policy stops waiting for it after the settle window, and the operator sees it.
Pure: imports the result values and config durations only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from dnsfailover.config.durations import human
from dnsfailover.results import Outcome, ProbeResult

RECENT = 10  # outcomes kept per check, for the reason of an unsettled one


class State(enum.Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class CheckHealth:
    check: str
    required: bool = True
    state: State = State.UNKNOWN
    successes: int = 0  # the current streak
    failures: int = 0
    since: float | None = None  # when the state was entered (None while UNKNOWN)
    last: ProbeResult | None = None
    passing_since: float | None = None  # start of the current run of passes (None: last failed)
    first_at: float | None = None  # when the first result was observed
    recent: tuple[Outcome, ...] = ()  # the last RECENT outcomes, oldest first

    @property
    def unsettled_for(self) -> float | None:
        """Seconds since the first result, while still UNKNOWN (None once settled or before)."""
        if self.state is not State.UNKNOWN or self.last is None or self.first_at is None:
            return None
        return self.last.observed_at - self.first_at

    @property
    def reason(self) -> str:
        if self.last is None:
            return "no result yet"
        if self.state is State.UNKNOWN and len(self.recent) > 1:
            failed = sum(o is Outcome.UNHEALTHY for o in self.recent)
            inconclusive = sum(o in (Outcome.ERROR, Outcome.OVERLOADED) for o in self.recent)
            tally = f"{failed} of the last {len(self.recent)} probes failed"
            if inconclusive:
                tally += f", {inconclusive} inconclusive (error or overloaded)"
            span = human(self.unsettled_for or 0)
            return f"unsettled for {span}: {tally}; last: {self.last.reason}"
        return f"{self.state.value}: {self.last.reason}"


def step(health: CheckHealth, result: ProbeResult, rise: int, fall: int) -> CheckHealth:
    """The check's health after one more result."""
    first_at = health.first_at if health.first_at is not None else result.observed_at
    recent = (*health.recent, result.outcome)[-RECENT:]
    if result.outcome in (Outcome.OVERLOADED, Outcome.ERROR):
        return replace(health, last=result, first_at=first_at, recent=recent)
    if result.outcome is Outcome.HEALTHY:
        successes, failures = health.successes + 1, 0
        passing_since = (
            health.passing_since if health.passing_since is not None else result.observed_at
        )
    else:
        successes, failures, passing_since = 0, health.failures + 1, None
    state = health.state
    if successes >= rise:
        state = State.HEALTHY
    elif failures >= fall:
        state = State.UNHEALTHY
    since = result.observed_at if state is not health.state else health.since
    return CheckHealth(
        health.check,
        health.required,
        state,
        successes,
        failures,
        since,
        result,
        passing_since,
        first_at,
        recent,
    )


@dataclass(frozen=True)
class InstanceHealth:
    name: str
    state: State
    since: float | None  # when the instance entered its state (None while UNKNOWN)
    checks: Mapping[str, CheckHealth]
    passing_since: float | None = None  # every required check has passed every probe since

    @property
    def unsettled_for(self) -> float | None:
        """While UNKNOWN: how long its longest-unsettled required check has had results."""
        if self.state is not State.UNKNOWN:
            return None
        spans = [c.unsettled_for for c in self.checks.values() if c.required]
        known = [s for s in spans if s is not None]
        return max(known) if known else None

    @property
    def reason(self) -> str:
        deciding = [c for c in self.checks.values() if c.required and c.state is self.state]
        chosen = deciding or list(self.checks.values())
        return "; ".join(f"{c.check} {c.reason}" for c in chosen)


def combine(name: str, checks: Mapping[str, CheckHealth]) -> InstanceHealth:
    required = [c for c in checks.values() if c.required]
    if required and all(c.state is State.HEALTHY for c in required):
        state = State.HEALTHY
        since = max(c.since or 0.0 for c in required)
    elif any(c.state is State.UNHEALTHY for c in required):
        state = State.UNHEALTHY
        since = min(c.since or 0.0 for c in required if c.state is State.UNHEALTHY)
    else:
        state, since = State.UNKNOWN, None
    passing = [c.passing_since for c in required if c.passing_since is not None]
    passing_since = max(passing) if passing and len(passing) == len(required) else None
    return InstanceHealth(name, state, since, MappingProxyType(dict(checks)), passing_since)


@dataclass(frozen=True)
class HealthSnapshot:
    """Health of every instance of every service, at one moment."""

    at: float
    services: Mapping[str, Mapping[str, InstanceHealth]]

    def instance(self, service: str, name: str) -> InstanceHealth:
        return self.services[service][name]


class HealthTracker:
    """Holds the check states; the controller owns it and feeds it results in order."""

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], dict[str, CheckHealth]] = {}
        self._order: dict[str, list[str]] = {}

    def register(self, service: str, instance: str, check: str, required: bool) -> None:
        checks = self._checks.setdefault((service, instance), {})
        current = checks.get(check)
        checks[check] = (
            replace(current, required=required) if current else CheckHealth(check, required)
        )
        names = self._order.setdefault(service, [])
        if instance not in names:
            names.append(instance)

    def keep_only(self, checks: set[tuple[str, str, str]]) -> None:
        """Forget every (service, instance, check) not in `checks` (after a reload)."""
        for key in list(self._checks):
            kept = {c: h for c, h in self._checks[key].items() if (*key, c) in checks}
            if kept:
                self._checks[key] = kept
            else:
                del self._checks[key]
                self._order[key[0]].remove(key[1])
                if not self._order[key[0]]:
                    del self._order[key[0]]

    def observe(
        self, service: str, instance: str, result: ProbeResult, rise: int, fall: int
    ) -> tuple[InstanceHealth, InstanceHealth]:
        """Record one result; return the instance's health before and after it."""
        checks = self._checks[(service, instance)]
        before = combine(instance, checks)
        checks[result.check] = step(checks[result.check], result, rise, fall)
        return before, combine(instance, checks)

    def instances(self, service: str) -> Mapping[str, InstanceHealth]:
        """One service's instances, as snapshot() would give them (without building the rest)."""
        return MappingProxyType(
            {name: combine(name, self._checks[(service, name)]) for name in self._order[service]}
        )

    def snapshot(self, at: float) -> HealthSnapshot:
        services = {
            service: MappingProxyType(
                {name: combine(name, self._checks[(service, name)]) for name in names}
            )
            for service, names in self._order.items()
        }
        return HealthSnapshot(at, MappingProxyType(services))
