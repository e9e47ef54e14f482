"""The daemon's side of several controllers (`coordination:`): one `Leadership` per daemon.

It owns the coordinator (coordination/coordinator.py: lease, election, reports, shared state,
on a thread of its own) and answers the daemon's questions on the controller thread, from the
coordinator's latest view, never waiting on etcd:
- `gate(service)`: may this controller write it now? Only the leader, within its renew
  deadline, and only once it has moved the service's fence to its own token ("fence" first).
- `health(service, own)`: the quorum of the live sites' reports (health/quorum.py), this
  site's own verdicts taken fresh from its tracker. A report is JSON, one per site: every
  service's instances as that site judges them (state, since, passing_since, reason; when it
  was observed; no secrets, no addresses), published when a state changes. One that does
  not parse counts as no report, and is logged once.
- `changed()`: after each coordinator round that saw something new: mirror the shared pins,
  drains and flips into state.json, audit a change of leadership, forget the fences of a lost
  one.
- `share(report)`: the leader's flips into the shared history; a failover request's outcome
  back to the CLI that waits on it (shared.py).
Imports config values, health, the coordination package, and the controller's state,
documents and reconcile values; never the daemon.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.controller import documents
from dnsfailover.controller.reconcile import Report
from dnsfailover.controller.shared import Request, Shared, edit, mirror, request_done, with_flip
from dnsfailover.controller.state import Flip, StateStore
from dnsfailover.coordination.coordinator import Coordinator, View
from dnsfailover.coordination.etcd import Etcd
from dnsfailover.errors import DnsFailoverError, FencedError
from dnsfailover.health import HealthSnapshot, InstanceHealth, State
from dnsfailover.health.quorum import QuorumHealth, SiteView, combine_sites
from dnsfailover.policy import Kind
from dnsfailover.providers import Provider

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
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.store = store
        self.clock = clock
        self.coordinator = coordinator or Coordinator(settings, wake)
        self.quorum = Quorum(settings)
        self.token: int | None = None  # our fencing token while we lead
        self.fenced: dict[str, int] = {}  # service → the token its fence holds (ours)
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

    # ------------------------------------------------------------------ deciding who writes

    def gate(self, service: str, dry_run: bool) -> str:
        """ "write" (we lead and its fence is ours), "fence" (move it first) or "follow"."""
        view = self.view()
        if not view.may_write(time.monotonic()) or self.token is None or view.token != self.token:
            return "follow"  # not leading, or leading anew since changed() last ran (it is next)
        if not dry_run and self.fenced.get(service) != self.token:
            return "fence"
        return "write"

    def changed(self) -> bool:
        """A round saw something new; True when we lead (the daemon reconciles everything)."""
        view = self.view()
        if view.shared != self._shared_text:
            self._mirror(view.shared)
        token = view.token if view.leading else None
        if token != self.token:
            self.token = token
            self.fenced.clear()
            self._audit({
                "event": "leadership_acquired" if view.leading else "leadership_lost",
                "site": self.site, "leader": view.leader, "fence": view.token, "service": None,
            })  # fmt: skip
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
        """The shared pins, drains and flips into state.json (the reconciler reads them)."""
        try:
            shared = Shared.parse(text)
            mirror(self.store, shared, self.clock())
        except DnsFailoverError as e:
            log.error("shared_state_not_mirrored error=%s", e)
            return
        self.shared, self._shared_text = shared, text

    # ------------------------------------------------------------------ the fence

    def fence_work(
        self, service: str, name: str, provider: Provider
    ) -> tuple[Report, Callable[[], None]]:
        """A new leader's first write for a service: move its fence to our token (on a
        worker: the report, and the work)."""
        token = self.token
        assert token is not None
        report = Report(
            service, change=f"fence {name} → epoch={token}", site=self.site, fence=token
        )

        def work() -> None:
            if not self.may_write():
                report.error = "not leading any more: fence not moved"
                return
            try:
                before = provider.move_fence(name, token)
                report.applied = True
                report.pending = f"epoch={before}" if before is not None else "none"
            except FencedError as e:
                report.fenced, report.error = True, str(e)
            except DnsFailoverError as e:
                report.error = str(e)

        return report, work

    def fence_landed(self, report: Report) -> bool:
        """Audit the fence's move; True when the service's fence is ours now."""
        service, token = report.service, report.fence
        self._audit({
            "service": service, "event": "fenced" if report.fenced else "fence",
            "site": report.site, "fence": token, "before": report.pending,
            "outcome": "applied" if report.applied else "failed", "error": report.error,
        })  # fmt: skip
        if report.applied and token is not None and token == self.token:
            self.fenced[service] = token
            log.info("fence_moved service=%s token=%s from=%s", service, token, report.pending)
            return True
        log.error("fence_not_moved service=%s token=%s error=%s", service, token, report.error)
        return False

    # ------------------------------------------------------------------ what the leader did

    def share(self, report: Report) -> None:
        """The leader's flip into the shared history; a request's outcome to its CLI."""
        decision, plan, key = report.decision, report.plan, report.service
        coordinator = self.coordinator
        if (
            report.applied
            and decision is not None
            and decision.kind is Kind.MOVE
            and decision.target is not None
            and not (plan is not None and plan.ttl_only)
        ):
            flip = Flip(report.write_acked_at or self.clock(), decision.current, decision.target,
                        decision.rule)  # fmt: skip
            coordinator.submit(lambda etcd: etcd.update(coordinator.state_key,
                                                        edit(with_flip(key, flip))))  # fmt: skip
        if report.request is None:
            return
        result = json.dumps(documents.audit_entry(report), default=str)
        result_key = f"{coordinator.results_prefix}{report.request}"
        request = report.request

        def answer(etcd: Etcd) -> None:
            etcd.put(result_key, result)
            etcd.update(coordinator.state_key, edit(request_done(key, request)))

        coordinator.submit(answer)

    def _audit(self, entry: dict[str, Any]) -> None:
        try:
            self.store.audit(entry)
        except DnsFailoverError as e:
            log.error("audit_failed error=%s", e)
