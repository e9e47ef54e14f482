"""The daemon's side of several controllers (`coordination:`): one `Leadership` per daemon.

It owns the coordinator (coordination/coordinator.py: lease, election, reports, shared state,
on a thread of its own) and answers the daemon's questions on the controller thread, from the
coordinator's latest view, never waiting on etcd:
- `token` / `may_write()`: the fencing token we lead with (None: following), and whether the
  lease still covers a write now. Who may write which service when — the fence first — is the
  per-service record's rule (machine.py); a write checks `may_write()` just before it goes.
- `health(service, own)`: the quorum of the live sites' reports (health/quorum.py), this
  site's own verdicts taken fresh from its tracker. A report is JSON, one per site: every
  service's instances as that site judges them (state, since, passing_since, reason; when it
  was observed; no secrets, no addresses), published when a state changes. One that does
  not parse counts as no report, and is logged once.
- `changed()`: after each coordinator round that saw something new: mirror the shared pins,
  drains and flips into state.json, journal a change of leadership.
- `share(report)`: the leader's flips into the shared history; a failover request's outcome
  back to the CLI that waits on it (shared.py).
Imports config values, health, the coordination package, and the controller's state, journal
and report values; never the daemon.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.controller.journal import Journal, decision_entry
from dnsfailover.controller.report import Report
from dnsfailover.controller.shared import Request, Shared, edit, mirror, request_done, with_flip
from dnsfailover.controller.state import Flip, StateStore
from dnsfailover.coordination.coordinator import Coordinator, View
from dnsfailover.coordination.etcd import Etcd
from dnsfailover.errors import DnsFailoverError
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
    document = {"site": site, "observed_at": snapshot.at, "services": services}
    return json.dumps(document, sort_keys=True)


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
        self._parsed: tuple[Mapping[str, str], dict[str, Verdicts]] | None = None

    def reports(self, view: View) -> dict[str, Verdicts]:
        """Every live, expected site's verdicts (other sites than ours), by site; parsed once
        per coordinator round (a view's reports never change)."""
        if self._parsed is not None and self._parsed[0] is view.reports:
            return self._parsed[1]
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
        self._parsed = (view.reports, found)
        return found

    def health(
        self, service: str, own: Mapping[str, InstanceHealth], others: Mapping[str, Verdicts]
    ) -> dict[str, QuorumHealth]:
        per_site = {self.settings.site: _own(self.settings.site, own)}
        for site, verdicts in others.items():
            per_site[site] = verdicts.get(service, {})
        return combine_sites(list(own), per_site, self.settings.k)


def status(view: View, settings: Coordination) -> dict[str, Any]:
    """The coordination part of health.json (and `status`)."""
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


class Leadership:
    def __init__(
        self,
        settings: Coordination,
        store: StateStore,
        journal: Journal,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.store = store
        self.journal = journal
        self.clock = clock
        self.coordinator = coordinator or Coordinator(settings, wake)
        self.quorum = Quorum(settings)
        self.token: int | None = None  # our fencing token while we lead
        self.shared = Shared()  # pins, drains, requests and flips in etcd (shared.py)
        self._shared_text: str | None = None
        self._handled: set[str] = set()  # failover requests taken on by this controller

    def start(self) -> None:
        self.coordinator.start()

    def stop(self) -> None:
        self.coordinator.stop()

    def view(self) -> View:
        return self.coordinator.view()

    def may_write(self) -> bool:
        return self.coordinator.may_write()

    def publish(self, snapshot: HealthSnapshot) -> None:
        self.coordinator.publish(site_report(self.site, snapshot))

    def health(self, service: str, own: Mapping[str, InstanceHealth]) -> dict[str, QuorumHealth]:
        return self.quorum.health(service, own, self.quorum.reports(self.view()))

    def status(self) -> dict[str, Any]:
        return status(self.view(), self.settings)

    # ------------------------------------------------------------------ each round

    def changed(self) -> bool:
        """A round saw something new; True when we lead (the daemon reconciles everything)."""
        view = self.view()
        if view.shared != self._shared_text:
            self._mirror(view.shared)
        token = view.token if view.leading else None
        if token != self.token:
            self.token = token
            event = "leadership_acquired" if view.leading else "leadership_lost"
            self.journal.event(event, site=self.site, leader=view.leader, fence=view.token)
        return view.leading

    def take_request(self, service: str) -> Request | None:
        """The operator's failover request for `service`, once (the leader carries it out)."""
        request = self.shared.requests.get(service)
        if request is None or request.id in self._handled:
            return None
        self._handled.add(request.id)
        log.info("failover_request service=%s to=%s from=%s", service, request.to, request.origin)
        return request

    def _mirror(self, text: str | None) -> None:
        """The shared pins, drains and flips into state.json (the pipeline reads them). The
        document comes from outside: whatever is wrong with it is logged and changes nothing."""
        try:
            shared = Shared.parse(text)
            mirror(self.store, shared, self.clock())
        except Exception as e:  # anything a writer to the prefix can put there
            log.error("shared_state_not_mirrored error=%s", type(e).__name__ if
                      not isinstance(e, DnsFailoverError) else e)  # fmt: skip
            return
        self.shared, self._shared_text = shared, text

    # ------------------------------------------------------------------ what the leader did

    def share(self, report: Report) -> None:
        """The leader's flip into the shared history; a request's outcome to its CLI."""
        decision, key = report.decision, report.service
        coordinator = self.coordinator
        if report.applied and report.is_flip and decision is not None:
            assert decision.target is not None
            flip = Flip(report.write_acked_at or self.clock(), decision.current, decision.target,
                        decision.rule)  # fmt: skip
            coordinator.submit(lambda etcd: etcd.update(coordinator.state_key,
                                                        edit(with_flip(key, flip))))  # fmt: skip
        if report.request is None:
            return
        result = json.dumps(decision_entry(report), default=str)
        result_key = f"{coordinator.results_prefix}{report.request}"
        request = report.request

        def answer(etcd: Etcd) -> None:
            etcd.put(result_key, result)
            etcd.update(coordinator.state_key, edit(request_done(key, request)))

        coordinator.submit(answer)
