"""Rise/fall hysteresis (as in HAProxy and anycast-healthchecker), and health that cannot freeze.

A check's verdict, from its results at this site (the table in docs/health.md, "From results to
a verdict"):

| a check's results                                              | verdict                     |
|----------------------------------------------------------------|-----------------------------|
| `rise` passes in a row                                         | HEALTHY                     |
| `fall` failures in a row (inconclusive results neither count   | UNHEALTHY                   |
| nor reset)                                                     |                             |
| not decided yet, inside the bound after registration (or the   | UNKNOWN                     |
| first result)                                                  |                             |
| still not decided after the bound (it flaps)                   | UNHEALTHY, reason "unsettled|
|                                                                | for 43s: 5 of the last 10   |
|                                                                | probes failed; last: ..."   |
| no passing result for the bound: overloaded, our probe         | UNHEALTHY, reason           |
| rate-limited, errors, a probe that raises, silence (no result  | "inconclusive for 43s: 429  |
| at all)                                                        | rate limited (our probe)"   |

The bound is `inconclusive_after` (config `checks.inconclusive_after`, default the settle
window `(max(rise, fall) + 1) x interval + timeout`: 43s with the defaults 10s, 3s, 3, 2).

An OVERLOADED result (alive, shedding load) and an ERROR result (the probe's own trouble, or a
probe that raised) change no streak. They cannot hold health up for ever, though: the time since
the last passing result (or, before any, since the check was registered with a clock, or since
its first result) is compared with `inconclusive_after` whenever health is judged — at each
result, and at any `now` the caller passes (`instances(service, now)`, `snapshot(at)`,
`advance(now)`), which is how silence counts. An inconclusive check is UNHEALTHY from the moment
the bound passed; a passing result ends it. After inconclusive results recovery needs `rise`
passes in a row like any recovery; after mere silence since a pass (our side stalled), one pass
carries on where it left off. The bound is per check (`register(..., inconclusive_after=)`);
infinite by default, so that one-shot uses (one round of results) are never inconclusive.

An instance is HEALTHY when all its required checks are; UNHEALTHY when any required check is;
UNKNOWN otherwise. Informational checks are reported and never decide.

Apart from the state, each check keeps `passing_since`: when its current run of passing results
began (None after a failure, or while inconclusive). A check can stay HEALTHY while failing one
probe in five, below `fall` in a row; `passing_since` tells steady health from that, and
failback asks for it.

A check that never completes a streak keeps its last RECENT outcomes and when its first result
came, so its reason says so ("unsettled for 10m: 5 of the last 10 probes failed"); past the
bound it is UNHEALTHY (a flapping instance is no candidate, and several sites agree to leave a
flapping active), until it completes `rise` passes (HEALTHY) or `fall` failures in a row.
Pure: imports the result values and config durations only; time comes in as values.
"""

from __future__ import annotations

import enum
import math
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
    last_pass_at: float | None = None  # when the last passing result was observed
    watched_since: float | None = None  # registered at (None: registered without a clock)
    inconclusive_after: float = math.inf  # no pass for this long: UNHEALTHY
    inconclusive_since: float | None = None  # a result found it inconclusive: from when
    # Set only on a judged view (`judge`): when it was judged; how long it has gone without a
    # passing result, when that is past the bound; whether it is past the bound undecided.
    judged_at: float | None = None
    inconclusive_for: float | None = None
    unsettled: bool = False

    @property
    def unsettled_for(self) -> float | None:
        """Seconds since the first result, while undecided (UNKNOWN, or UNHEALTHY for being
        undecided past the bound); None once settled or before any result."""
        undecided = self.state is State.UNKNOWN or self.unsettled
        if not undecided or self.last is None or self.first_at is None:
            return None
        return self.last.observed_at - self.first_at

    @property
    def reason(self) -> str:
        if self.inconclusive_for is not None:
            return f"inconclusive for {human(self.inconclusive_for)}: {self._inconclusive_detail}"
        if self.last is None:
            return "no result yet"
        if (self.state is State.UNKNOWN or self.unsettled) and len(self.recent) > 1:
            failed = sum(o is Outcome.UNHEALTHY for o in self.recent)
            inconclusive = sum(o in (Outcome.ERROR, Outcome.OVERLOADED) for o in self.recent)
            tally = f"{failed} of the last {len(self.recent)} probes failed"
            if inconclusive:
                tally += f", {inconclusive} inconclusive (error or overloaded)"
            span = human(self.unsettled_for or 0)
            return f"unsettled for {span}: {tally}; last: {self.last.reason}"
        return f"{self.state.value}: {self.last.reason}"

    @property
    def _inconclusive_detail(self) -> str:
        """What the last result said, or for how long there has been none."""
        if self.last is None:
            return "no result"
        at = self.judged_at if self.judged_at is not None else self.last.observed_at
        age = at - self.last.observed_at
        if self.last.ok:
            return f"no result for {human(age)}"
        return self.last.reason + (f" ({human(age)} ago)" if age >= 1 else "")


def _without_pass(health: CheckHealth, at: float | None) -> tuple[float, float] | None:
    """(seconds without a passing result, when the bound passed), once it has; else None.

    Counted from the last pass, or before any from when the check was registered or first
    heard of, whichever is earlier. A check UNHEALTHY for `fall` failures is that already.
    """
    if at is None or math.isinf(health.inconclusive_after):
        return None
    if health.state is State.UNHEALTHY and health.inconclusive_since is None:
        return None
    if health.last_pass_at is not None:
        anchor = health.last_pass_at
    else:
        starts = [t for t in (health.watched_since, health.first_at) if t is not None]
        if not starts:
            return None
        anchor = min(starts)
    span = at - anchor
    return (span, anchor + health.inconclusive_after) if span >= health.inconclusive_after else None


def _undecided(health: CheckHealth, at: float | None) -> float | None:
    """When the bound passed on a check still UNKNOWN (it flaps: passes, but never `rise` in a
    row, nor `fall` failures), counted from when it was registered or first heard of."""
    if at is None or health.state is not State.UNKNOWN or math.isinf(health.inconclusive_after):
        return None
    starts = [t for t in (health.watched_since, health.first_at) if t is not None]
    if not starts or at - min(starts) < health.inconclusive_after:
        return None
    return min(starts) + health.inconclusive_after


def judge(health: CheckHealth, at: float | None) -> CheckHealth:
    """The check as it stands at `at` (None: as of its last result only): UNHEALTHY, with an
    "inconclusive" reason, when it has had no passing result for its bound; UNHEALTHY, with
    an "unsettled" reason, when it is still undecided after the bound."""
    found = _without_pass(health, at)
    if found is None:
        undecided = _undecided(health, at)
        if undecided is not None:
            return replace(
                health, state=State.UNHEALTHY, since=undecided, judged_at=at, unsettled=True
            )
        return health if at is None else replace(health, judged_at=at)
    span, bound_passed = found
    since = health.inconclusive_since if health.inconclusive_since is not None else bound_passed
    return replace(
        health,
        state=State.UNHEALTHY,
        since=since,
        passing_since=None,
        judged_at=at,
        inconclusive_for=span,
    )


def step(health: CheckHealth, result: ProbeResult, rise: int, fall: int) -> CheckHealth:
    """The check's health after one more result."""
    at = result.observed_at
    found = _without_pass(health, at)
    evidence = health.last is not None and not health.last.ok  # not only silence since a pass
    if found is not None and health.inconclusive_since is None and evidence:
        # Inconclusive results until now: it has been UNHEALTHY since the bound passed, and a
        # pass now starts a recovery (rise in a row), as after any unhealthy spell. After mere
        # silence (our side stalled, say) a pass simply carries on: nothing spoke against it.
        health = replace(
            health,
            state=State.UNHEALTHY,
            since=found[1],
            successes=0,
            passing_since=None,
            inconclusive_since=found[1],
        )
    first_at = health.first_at if health.first_at is not None else at
    recent = (*health.recent, result.outcome)[-RECENT:]
    if result.outcome in (Outcome.OVERLOADED, Outcome.ERROR):
        return replace(health, last=result, first_at=first_at, recent=recent)
    inconclusive_since = health.inconclusive_since
    last_pass_at = health.last_pass_at
    if result.outcome is Outcome.HEALTHY:
        successes, failures = health.successes + 1, 0
        passing_since = health.passing_since if health.passing_since is not None else at
        last_pass_at = at if last_pass_at is None else max(last_pass_at, at)
        inconclusive_since = None
    else:
        successes, failures, passing_since = 0, health.failures + 1, None
    state = health.state
    if successes >= rise:
        state = State.HEALTHY
    elif failures >= fall:
        state = State.UNHEALTHY
        inconclusive_since = None  # unhealthy for its failures now
    since = at if state is not health.state else health.since
    return replace(
        health,
        state=state,
        successes=successes,
        failures=failures,
        since=since,
        last=result,
        passing_since=passing_since,
        first_at=first_at,
        recent=recent,
        last_pass_at=last_pass_at,
        inconclusive_since=inconclusive_since,
    )


@dataclass(frozen=True)
class InstanceHealth:
    name: str
    state: State
    since: float | None  # when the instance entered its state (None while UNKNOWN)
    checks: Mapping[str, CheckHealth]
    passing_since: float | None = None  # every required check has passed every probe since
    # Several controllers: the sites' verdicts contradict each other or too few are fresh
    # (health/quorum.py). As the active it keeps the name; it is never a candidate.
    held: bool = False

    @property
    def unsettled_for(self) -> float | None:
        """While UNKNOWN, or UNHEALTHY because a required check is undecided past its bound:
        how long its longest-unsettled required check has had results."""
        required = [c for c in self.checks.values() if c.required]
        if self.state is State.HEALTHY or (
            self.state is State.UNHEALTHY and not any(c.unsettled for c in required)
        ):
            return None
        spans = [c.unsettled_for for c in required]
        known = [s for s in spans if s is not None]
        return max(known) if known else None

    @property
    def reason(self) -> str:
        deciding = [c for c in self.checks.values() if c.required and c.state is self.state]
        chosen = deciding or list(self.checks.values())
        return "; ".join(f"{c.check} {c.reason}" for c in chosen)


def combine(
    name: str, checks: Mapping[str, CheckHealth], at: float | None = None
) -> InstanceHealth:
    """The instance from its checks, each judged at `at` (None: as of their last results)."""
    checks = {key: judge(check, at) for key, check in checks.items()}
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
    """Holds the check states; the controller owns it and feeds it results in order.

    Time is a value: each result brings its `observed_at`, and the caller passes `now` where
    silence should count (`instances(service, now)`, `snapshot(at)`, `advance(now)`). Without
    it an instance is judged as of the latest time it was judged at (its last result, or the
    last `advance`), so results alone still make a check inconclusive.
    """

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], dict[str, CheckHealth]] = {}
        self._order: dict[str, list[str]] = {}
        self._judged_at: dict[tuple[str, str], float] = {}  # the latest time each was judged

    def register(
        self,
        service: str,
        instance: str,
        check: str,
        required: bool,
        inconclusive_after: float = math.inf,
        now: float | None = None,
    ) -> None:
        """Track a check (again, after a reload: its health carries over). `now` starts the
        clock for a check that never answers; `inconclusive_after` is its bound."""
        checks = self._checks.setdefault((service, instance), {})
        current = checks.get(check) or CheckHealth(check, required)
        watched = current.watched_since if current.watched_since is not None else now
        checks[check] = replace(
            current,
            required=required,
            inconclusive_after=inconclusive_after,
            watched_since=watched,
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
                self._judged_at.pop(key, None)
                self._order[key[0]].remove(key[1])
                if not self._order[key[0]]:
                    del self._order[key[0]]

    def observe(
        self,
        service: str,
        instance: str,
        result: ProbeResult,
        rise: int,
        fall: int,
        now: float | None = None,
    ) -> tuple[InstanceHealth, InstanceHealth]:
        """Record one result; return the instance's health before it (as last judged) and after
        it (at `now`, or at the result's time if later or if `now` is not given)."""
        key = (service, instance)
        checks = self._checks[key]
        previous = self._judged_at.get(key)
        before = combine(instance, checks, previous)
        checks[result.check] = step(checks[result.check], result, rise, fall)
        at = max(t for t in (previous, now, result.observed_at) if t is not None)
        self._judged_at[key] = at
        return before, combine(instance, checks, at)

    def advance(self, now: float) -> list[tuple[str, InstanceHealth, InstanceHealth]]:
        """Let time pass without results: (service, before, after) for each instance whose state
        changed since it was last judged (a check gone inconclusive through silence)."""
        changes = []
        for (service, name), checks in self._checks.items():
            previous = self._judged_at.get((service, name))
            at = now if previous is None else max(previous, now)
            before, after = combine(name, checks, previous), combine(name, checks, at)
            self._judged_at[(service, name)] = at
            if before.state is not after.state:
                changes.append((service, before, after))
        return changes

    def instances(self, service: str, now: float | None = None) -> Mapping[str, InstanceHealth]:
        """One service's instances, as snapshot() would give them (without building the rest):
        judged at `now`, or as last judged."""
        return MappingProxyType(
            {
                name: combine(
                    name,
                    self._checks[(service, name)],
                    now if now is not None else self._judged_at.get((service, name)),
                )
                for name in self._order[service]
            }
        )

    def snapshot(self, at: float) -> HealthSnapshot:
        """Every instance judged at `at` (silence counts)."""
        services = {
            service: MappingProxyType(
                {name: combine(name, self._checks[(service, name)], at) for name in names}
            )
            for service, names in self._order.items()
        }
        return HealthSnapshot(at, MappingProxyType(services))
