"""Between the daemon and the coordinator: this site's report out, the quorum's health in.

A report is JSON, one per site: every service's instances as this site judges them (state,
since, passing_since, reason; no secrets, no addresses). The leader turns the live sites'
reports (its own taken fresh from its tracker) into quorum health for the policy
(health/quorum.py); a report that does not parse counts as no report, and is logged once.
Imports config values, health, the coordinator's values and documents' helpers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.coordination.coordinator import View
from dnsfailover.health import HealthSnapshot, InstanceHealth, State
from dnsfailover.health.quorum import QuorumHealth, SiteView, combine_sites

log = logging.getLogger(__name__)

Verdicts = dict[str, dict[str, SiteView]]  # service → instance → one site's verdict


def site_report(site: str, snapshot: HealthSnapshot) -> str:
    """This site's report: what it publishes under its lease."""
    services = {
        key: {
            name: {
                "state": h.state.value,
                "since": h.since,
                "passing_since": h.passing_since,
                "reason": h.reason,
            }
            for name, h in instances.items()
        }
        for key, instances in snapshot.services.items()
    }
    return json.dumps({"site": site, "services": services}, sort_keys=True)


def _verdicts(site: str, text: str) -> Verdicts:
    data = json.loads(text)
    found: Verdicts = {}
    for key, instances in data["services"].items():
        found[key] = {
            name: SiteView(
                site,
                State(v["state"]),
                v.get("since"),
                v.get("passing_since"),
                str(v.get("reason", "")),
            )
            for name, v in instances.items()
        }
    return found


def _own(site: str, instances: Mapping[str, InstanceHealth]) -> dict[str, SiteView]:
    return {
        name: SiteView(site, h.state, h.since, h.passing_since, h.reason)
        for name, h in instances.items()
    }


class Quorum:
    """The quorum health of every service, from the coordinator's latest view."""

    def __init__(self, settings: Coordination) -> None:
        self.settings = settings
        self._bad: set[tuple[str, str]] = set()  # (site, text) already logged as unreadable

    def reports(self, view: View) -> dict[str, Verdicts]:
        """Every live, expected site's verdicts (other sites than ours), by site."""
        found: dict[str, Verdicts] = {}
        for site, text in view.reports.items():
            if site == self.settings.site:
                continue
            if site not in self.settings.sites:
                if (site, "") not in self._bad:
                    self._bad.add((site, ""))
                    log.warning("coordination_unknown_site site=%s: not in sites, ignored", site)
                continue
            try:
                found[site] = _verdicts(site, text)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                if (site, text) not in self._bad:
                    self._bad.add((site, text))
                    log.error("coordination_bad_report site=%s error=%s", site, e)
        return found

    def health(
        self, service: str, own: Mapping[str, InstanceHealth], others: Mapping[str, Verdicts]
    ) -> dict[str, QuorumHealth]:
        per_site = {self.settings.site: _own(self.settings.site, own)}
        for site, verdicts in others.items():
            per_site[site] = verdicts.get(service, {})
        return combine_sites(list(own), per_site, self.settings.k)


def status(view: View | None, settings: Coordination | None) -> dict[str, Any] | None:
    """The coordination part of health.json (and `status`)."""
    if view is None or settings is None:
        return None
    now = time.monotonic()
    return {
        "site": view.site,
        "leader": view.leader,
        "leading": view.leading,
        "writing_allowed": view.may_write(now),
        "token": view.token,
        "etcd": "ok" if view.etcd_ok else "unreachable",
        "etcd_error": view.error,
        "etcd_state_for": round(now - view.since, 1) if view.since else None,
        "sites": sorted(settings.sites),
        "reporting": sorted(view.reports),
        "quorum": settings.k,
    }
