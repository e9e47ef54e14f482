"""Quorum health: one instance's state from what several vantage points ("sites") report.

Each controller judges every instance from its own site (the tracker: past its settle window a
site's verdict is definitive, HEALTHY or UNHEALTHY) and publishes it; the leader decides from
the verdicts of the sites whose reports are fresh (the reader drops stale and dead sites before
they get here; a report of UNKNOWN is no verdict). With k = `quorum`:

| fresh verdicts                   | quorum verdict | as the active                 | candidate |
|----------------------------------|----------------|-------------------------------|-----------|
| ≥ k UNHEALTHY, < k HEALTHY       | UNHEALTHY      | left (to a HEALTHY candidate) | no        |
| ≥ k HEALTHY, < k UNHEALTHY       | HEALTHY        | kept                          | yes       |
| both kinds, neither reaches k;   | SPLIT, held    | kept; alarm after the settle  | no        |
|   or both reach k (k ≤ n/2)      |                |   window                      |           |
| one kind only, fewer than k      | UNKNOWN, held  | kept (fail-static); alarm     | no        |
|   (sites down, stale, UNKNOWN)   |                |   after the settle window     |           |

SPLIT and UNKNOWN are `held`: the state the policy sees is UNKNOWN with `held` set, and the
policy never leaves a held active (policy/decide.py). So with `quorum: majority` one site's view
never moves the name; with k ≤ n/2 it may (the operator's explicit choice; `validate` warns).
Pure: values in, values out. Imports the tracker's values only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dnsfailover.health.tracker import InstanceHealth, State


class Verdict(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    SPLIT = "split"  # the sites contradict each other
    UNKNOWN = "unknown"  # too few fresh verdicts of either kind


@dataclass(frozen=True)
class SiteView:
    """One site's verdict on one instance, as it published it."""

    site: str
    state: State
    since: float | None = None
    passing_since: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class QuorumHealth(InstanceHealth):
    """An instance's health as k of the fresh sites see it; `views` are every site's verdict."""

    views: tuple[SiteView, ...] = ()
    summary: str = ""
    verdict: Verdict = Verdict.UNKNOWN

    @property
    def reason(self) -> str:
        return self.summary

    @property
    def unsettled_for(self) -> float | None:
        return None


def _kth(values: list[float | None], k: int) -> float | None:
    """The time at which k of these had happened (None when fewer than k have)."""
    known = sorted(v for v in values if v is not None)
    return known[k - 1] if len(known) >= k else None


def verdict(healthy: int, unhealthy: int, k: int) -> Verdict:
    """The table above, for the counts of fresh HEALTHY and UNHEALTHY verdicts."""
    if unhealthy >= k and healthy < k:
        return Verdict.UNHEALTHY
    if healthy >= k and unhealthy < k:
        return Verdict.HEALTHY
    if healthy and unhealthy:
        return Verdict.SPLIT
    return Verdict.UNKNOWN


def quorum_health(name: str, views: list[SiteView], k: int) -> QuorumHealth:
    """The instance's state for the policy, from the fresh sites' views of it."""
    views = sorted(views, key=lambda v: v.site)
    healthy = [v for v in views if v.state is State.HEALTHY]
    unhealthy = [v for v in views if v.state is State.UNHEALTHY]
    found = verdict(len(healthy), len(unhealthy), k)
    since = passing = None
    if found is Verdict.UNHEALTHY or found is Verdict.HEALTHY:
        agreeing = unhealthy if found is Verdict.UNHEALTHY else healthy
        state = State.UNHEALTHY if found is Verdict.UNHEALTHY else State.HEALTHY
        since = _kth([v.since for v in agreeing], k)
        if state is State.HEALTHY:
            passing = _kth([v.passing_since for v in agreeing], k)
        words = "; ".join(f"{v.site}: {v.reason}" for v in agreeing)
        summary = (
            f"{state.value}: {len(agreeing)} of {len(views)} sites agree (quorum {k}): {words}"
        )
    elif found is Verdict.SPLIT:
        state = State.UNKNOWN
        words = ", ".join(
            f"{v.site} {v.state.value}" + (f" ({v.reason})" if v.state is State.UNHEALTHY else "")
            for v in (*unhealthy, *healthy)
        )
        summary = f"split: {words}; {k} sites must agree"
    else:
        state = State.UNKNOWN
        words = ", ".join(f"{v.site} {v.state.value}" for v in views) or "no site reports"
        summary = f"not settled: {k} sites must agree ({words})"
    return QuorumHealth(
        name,
        state,
        since,
        MappingProxyType({}),
        passing,
        held=found in (Verdict.SPLIT, Verdict.UNKNOWN),
        views=tuple(views),
        summary=summary,
        verdict=found,
    )


def combine_sites(
    instances: list[str], reports: Mapping[str, Mapping[str, SiteView]], k: int
) -> dict[str, QuorumHealth]:
    """Every instance's quorum health; `reports` maps each fresh site to its verdicts."""
    return {
        name: quorum_health(name, [views[name] for views in reports.values() if name in views], k)
        for name in instances
    }
