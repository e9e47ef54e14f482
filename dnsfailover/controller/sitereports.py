"""Every site's report: what this site publishes, and which of the others' count.

A report is JSON, one per site, under its lease (`<prefix>reports/<site>`): each service's
instances as that site judges them (state, since, passing_since, reason: no secrets, no
addresses), published at once when a verdict changes and bounded (REPORT_BUDGET) first. Beside
it the site's beat (`<prefix>beats/<site>`), put every round: its heartbeat (the probe results
it has taken in so far) and whether it can do the leader's job (its DNS reachability, reach.py).
Verdicts wake the leader at once (a watch); beats only say who is alive and able.

The reader trusts nothing in it: a report that does not parse, is over the budget, names
another site than its key, or comes from a site not in `sites` counts as no report (logged
once); every reason is cleaned and capped again. Freshness is judged by the reader's own clock,
never by comparing hosts' clocks: a report counts only while its heartbeat has advanced within
`stale_after` (3 check intervals) — a site whose coordinator renews its lease while its probing
has stalled stops counting, and shows as stale.
Imports config and health values and the text cleaner; no I/O.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.health import HealthSnapshot, State
from dnsfailover.health.quorum import SiteView
from dnsfailover.text import clean

log = logging.getLogger(__name__)

REPORT_BUDGET = 256 * 1024  # bytes: far above a real report, far below etcd's 1.5 MiB limit

Verdicts = dict[str, dict[str, SiteView]]  # service → instance → one site's verdict


@dataclass(frozen=True)
class SiteReport:
    site: str
    verdicts: Verdicts
    heartbeat: int = 0
    dns_reachable: bool = False
    dns_since: float | None = None  # wall clock, as the site saw it (for status only)


def build_beat(site: str, heartbeat: int, dns_reachable: bool, dns_since: float | None) -> str:
    """This site's beat: alive, probing (heartbeat) and able to reach DNS."""
    document = {"site": site, "heartbeat": heartbeat,
                "dns": {"reachable": dns_reachable, "since": dns_since}}  # fmt: skip
    return json.dumps(document, sort_keys=True)


def build(site: str, snapshot: HealthSnapshot) -> str:
    """This site's report, at most REPORT_BUDGET bytes (reasons are cut further if needed)."""
    limit = 300
    while True:
        services = {
            key: {
                name: {"state": h.state.value, "since": h.since,
                       "passing_since": h.passing_since, "reason": clean(h.reason, limit)}
                for name, h in instances.items()
            }
            for key, instances in snapshot.services.items()
        }  # fmt: skip
        document = {"site": site, "observed_at": snapshot.at, "services": services}
        text = json.dumps(document, sort_keys=True)
        if len(text.encode()) <= REPORT_BUDGET or limit <= 20:
            return text
        limit //= 2


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a time: {clean(repr(value), 40)}")
    return float(value)


def _document(site: str, text: str) -> dict[str, Any]:
    if len(text.encode()) > REPORT_BUDGET:
        raise ValueError(f"{len(text.encode())} bytes, over the {REPORT_BUDGET} budget")
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("site") != site:
        raise ValueError("not this site's report")
    return data


def parse_beat(site: str, text: str) -> tuple[int, bool, float | None]:
    """A site's beat, checked: (heartbeat, DNS reachable, since); ValueError when not one."""
    data = _document(site, text)
    heartbeat = data.get("heartbeat", 0)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 0:
        raise ValueError("heartbeat is not a count")
    dns = data.get("dns") or {}
    if not isinstance(dns, dict) or not isinstance(dns.get("reachable", False), bool):
        raise ValueError("dns is not {reachable, since}")
    return heartbeat, dns.get("reachable", False), _number(dns.get("since"))


def parse(site: str, text: str, beat: str | None = None) -> SiteReport:
    """A site's report (and its beat), checked; ValueError when it is not one."""
    data = _document(site, text)
    heartbeat, dns_reachable, dns_since = parse_beat(site, beat) if beat else (0, False, None)
    services = data.get("services")
    if not isinstance(services, dict):
        raise ValueError("services is not a mapping")
    verdicts: Verdicts = {}
    for key, instances in services.items():
        if not isinstance(instances, dict):
            raise ValueError(f"services.{clean(str(key), 40)} is not a mapping")
        verdicts[str(key)] = {
            str(name): SiteView(
                site,
                State(v["state"]),
                _number(v.get("since")),
                _number(v.get("passing_since")),
                clean(str(v.get("reason", ""))),
            )
            for name, v in instances.items()
        }
    return SiteReport(site, verdicts, heartbeat, dns_reachable, dns_since)


class Sites:
    """The other sites' reports as this controller reads them, and whether each counts."""

    def __init__(self, settings: Coordination, stale_after: float) -> None:
        self.settings = settings
        self.stale_after = stale_after
        self._bad: set[tuple[str, str]] = set()  # (site, text) already logged as unreadable
        self._seen: tuple[Mapping[str, str], Mapping[str, str]] | None = None
        self._reports: dict[str, SiteReport] = {}
        self._beats: dict[str, tuple[int, float]] = {}  # site → heartbeat, when it last moved

    def read(self, reports: Mapping[str, str], beats: Mapping[str, str], now: float) -> None:
        """A coordinator round's reports and beats (a view's never change: parsed once)."""
        if self._seen is not None and reports is self._seen[0] and beats is self._seen[1]:
            return
        self._seen = (reports, beats)
        found: dict[str, SiteReport] = {}
        for site, text in reports.items():
            if site == self.settings.site:
                continue
            if site not in self.settings.sites:
                self._once(site, "", "coordination_unknown_site site=%s: not in sites, ignored")
                continue
            beat_text = beats.get(site)
            if beat_text is None:
                continue  # no beat: not alive as far as we know
            try:
                found[site] = parse(site, text, beat_text)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
                self._once(site, text, f"coordination_bad_report site=%s error={clean(str(e))}")
        for site, report in found.items():
            beat = self._beats.get(site)
            if beat is None or beat[0] != report.heartbeat:
                self._beats[site] = (report.heartbeat, now)
        self._reports = found

    def _once(self, site: str, text: str, message: str) -> None:
        if (site, text) not in self._bad:
            self._bad.add((site, text))
            log.error(message, site)

    def age(self, site: str, now: float) -> float | None:
        """Seconds since the site's heartbeat last advanced, by this reader's clock."""
        beat = self._beats.get(site)
        return None if beat is None or site not in self._reports else now - beat[1]

    def fresh(self, now: float) -> dict[str, SiteReport]:
        """The live sites whose probing is moving (their reports count)."""
        return {
            site: report
            for site, report in self._reports.items()
            if (age := self.age(site, now)) is not None and age <= self.stale_after
        }

    def status(self, now: float) -> dict[str, dict[str, Any]]:
        """Per other site: reporting, fresh or stale (and for how long), DNS reachable."""
        found: dict[str, dict[str, Any]] = {}
        for site in self.settings.sites:
            if site == self.settings.site:
                continue
            report, age = self._reports.get(site), self.age(site, now)
            if report is None or age is None:
                found[site] = {"reporting": False}
                continue
            found[site] = {"reporting": True, "fresh": age <= self.stale_after,
                           "report_age": round(age, 1), "dns_reachable": report.dns_reachable,
                           "dns_since": report.dns_since}  # fmt: skip
        return found
