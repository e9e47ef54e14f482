"""Quorum health: one instance's state from what several vantage points ("sites") report.

Each controller judges every instance from its own site (the tracker) and publishes that view;
the leader decides from all of them. For k reports needed (the config's `quorum`), an instance
is UNHEALTHY when at least k live sites call it unhealthy, HEALTHY when at least k call it
healthy, and otherwise UNKNOWN: not settled, so the settle rule applies (policy/decide.py).
One site cut off from an instance therefore moves nothing while k others still reach it, and
an instance that is really down is UNHEALTHY as soon as k sites have seen it fail. Sites that
do not report (their lease expired) are simply absent. With fewer than k sites reporting,
nothing is settled: a lone controller never moves the name on its own view.

Pure: values in, values out. Imports the tracker's values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dnsfailover.health.tracker import InstanceHealth, State


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
    """An instance's health as k of the live sites see it; `views` are every site's verdict."""

    views: tuple[SiteView, ...] = ()
    summary: str = ""

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


def quorum_health(name: str, views: list[SiteView], k: int) -> QuorumHealth:
    """The instance's state for the policy, from the live sites' views of it."""
    views = sorted(views, key=lambda v: v.site)
    healthy = [v for v in views if v.state is State.HEALTHY]
    unhealthy = [v for v in views if v.state is State.UNHEALTHY]
    tally = f"{len(healthy)} healthy, {len(unhealthy)} unhealthy of {len(views)} reporting"
    if len(unhealthy) >= k:
        state, agreeing = State.UNHEALTHY, unhealthy
    elif len(healthy) >= k:
        state, agreeing = State.HEALTHY, healthy
    else:
        state, agreeing = State.UNKNOWN, []
    if agreeing:
        since = _kth([v.since for v in agreeing], k)
        words = "; ".join(f"{v.site}: {v.reason}" for v in agreeing)
        summary = (
            f"{state.value}: {len(agreeing)} of {len(views)} sites agree (quorum {k}): {words}"
        )
    else:
        since = None
        words = "; ".join(f"{v.site} {v.state.value}" for v in views) or "no site reports"
        summary = f"not settled: {k} sites must agree ({tally}: {words})"
    passing = _kth([v.passing_since for v in views], k) if state is State.HEALTHY else None
    return QuorumHealth(
        name,
        state,
        since,
        MappingProxyType({}),
        passing,
        views=tuple(views),
        summary=summary,
    )


def combine_sites(
    instances: list[str], reports: Mapping[str, Mapping[str, SiteView]], k: int
) -> dict[str, QuorumHealth]:
    """Every instance's quorum health; `reports` maps each live site to its verdicts."""
    return {
        name: quorum_health(name, [views[name] for views in reports.values() if name in views], k)
        for name in instances
    }
