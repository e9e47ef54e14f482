"""The daemon's side of several controllers (`coordination:`): one `Leadership` per daemon.

It owns the coordinator (coordination/coordinator.py: lease, election, reports, shared state,
on a thread of its own) and answers the daemon's questions on the controller thread, from the
coordinator's latest view, never waiting on etcd:
- `token` / `may_write()`: the fencing token we lead with (None: following), and whether the
  lease still covers a write now. Who may write which service when — the fence first — is the
  per-service record's rule (machine.py); a write checks `may_write()` just before it goes.
- `health(service, own)`: the quorum (health/quorum.py) of the fresh sites' verdicts
  (sitereports.py: a site counts while its probing heartbeat moves, by our clock), this site's
  own taken from its tracker while its own probing moves.
- `eligible()` (asked by the coordinator before it campaigns): only a site that can do the
  leader's job campaigns — its DNS path works (reach.py), its probing moves, and after it
  handed leadership over, its DNS path has worked for `handover_after` again.
- `consider_handover()` (every tick): a leader that cannot reach its DNS service (or whose own
  probing stalled) while another fresh site can, resigns — deletes the leader key by its own
  create revision, keeps its lease and its report — and journals `leadership_handed_over`.
  The successor moves every fence to its token before its first write, so the old leader's
  late retries are refused by the DNS server itself.
- `changed()`: after each coordinator round that saw something new: mirror the shared pins,
  drains and flips into state.json, journal a change of leadership.
- `share(report)`: the leader's flips into the shared history; a failover request's outcome
  back to the CLI that waits on it (shared.py).
- `take_drill(service)`, `share_practice(service, run, on)`, `last_run(service)`: a drill
  asked on any site's host, taken once by the leader; each step of the leader's run into
  the shared document (every follower mirrors its report); when the schedule last ran.
Imports config values, health, the coordination package, and the controller's state, journal,
report, reach, run store, shared document and site report values; never the daemon.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.controller import sitereports
from dnsfailover.controller.journal import Journal, decision_entry
from dnsfailover.controller.reach import Reach
from dnsfailover.controller.report import Report
from dnsfailover.controller.runs import DrillRequest, RunStore
from dnsfailover.controller.shared import (
    Request,
    Shared,
    drill_taken,
    edit,
    mirror,
    request_done,
    with_flip,
    with_practice,
)
from dnsfailover.controller.sitereports import Sites
from dnsfailover.controller.state import Flip, StateStore
from dnsfailover.coordination.coordinator import Coordinator, View
from dnsfailover.coordination.etcd import Etcd
from dnsfailover.errors import DnsFailoverError
from dnsfailover.health import HealthSnapshot, InstanceHealth
from dnsfailover.health.quorum import QuorumHealth, SiteView, combine_sites
from dnsfailover.text import clean

log = logging.getLogger(__name__)

DRILL_STALE = 300.0  # seconds: a drill request older than this is not carried out


def _own(site: str, instances: Mapping[str, InstanceHealth]) -> dict[str, SiteView]:
    return {
        name: SiteView(site, h.state, h.since, h.passing_since, h.reason)
        for name, h in instances.items()
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
        stale_after: float = 30.0,
        handover_after: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.store = store
        self.journal = journal
        self.clock = clock
        self.monotonic = monotonic
        self.stale_after = stale_after  # a site's probing heartbeat older than this: stale
        self.handover_after = handover_after
        self.reach = Reach(handover_after, monotonic())  # this site's path to its DNS service
        self.sites = Sites(settings, stale_after)
        self.coordinator = coordinator or Coordinator(settings, wake, eligible=self.eligible)
        self.token: int | None = None  # our fencing token while we lead
        self.heartbeat = 0  # probe results taken in: other sites see our probing move
        self._beat_at = monotonic()
        self._resigned = False  # handed over: campaign again only once DNS works steadily
        self._reader = concurrent.futures.ThreadPoolExecutor(1, "dns-reach")
        self._reading: concurrent.futures.Future[None] | None = None
        self.shared = Shared()  # pins, drains, requests and flips in etcd (shared.py)
        self._shared_text: str | None = None
        self._handled: set[str] = set()  # failover and drill requests taken on by this controller
        self.services: Callable[[], list[str]] = list  # the configured services (the daemon's)

    def start(self) -> None:
        self.coordinator.start()

    def stop(self) -> None:
        self.coordinator.stop()
        self._reader.shutdown(wait=False)

    def view(self) -> View:
        return self.coordinator.view()

    def may_write(self) -> bool:
        return self.coordinator.may_write()

    def beat(self) -> None:
        """A probe result was taken in."""
        self.heartbeat += 1
        self._beat_at = self.monotonic()

    def probing(self, now: float) -> bool:
        """Our own probing moves (results came in within `stale_after`)."""
        return now - self._beat_at <= self.stale_after

    def publish(self, snapshot: HealthSnapshot) -> None:
        """Our report (sent by the coordinator's next round, which starts now)."""
        now = self.monotonic()
        since = self.reach.since()
        wall_since = None if since is None else self.clock() - (now - since)
        beat = sitereports.build_beat(self.site, self.heartbeat, self.reach.reachable(now),
                                      wall_since)  # fmt: skip
        self.coordinator.publish(sitereports.build(self.site, snapshot), beat)

    def health(self, service: str, own: Mapping[str, InstanceHealth]) -> dict[str, QuorumHealth]:
        """The quorum of the fresh sites' verdicts (ours while our probing moves)."""
        now = self.monotonic()
        view = self.view()
        self.sites.read(view.reports, view.beats, now)
        per_site = {site: report.verdicts.get(service, {})
                    for site, report in self.sites.fresh(now).items()}  # fmt: skip
        if self.probing(now):
            per_site[self.site] = _own(self.site, own)
        return combine_sites(list(own), per_site, self.settings.k)

    def eligible(self) -> bool:
        """May this site campaign? (Asked on the coordinator's thread.)"""
        now = self.monotonic()
        if not self.reach.reachable(now) or not self.probing(now):
            return False
        if self._resigned:
            if not self.reach.steady(now):
                return False
            self._resigned = False
        return True

    def consider_handover(self) -> None:
        """A leader that cannot do its job hands over to a fresh site that can."""
        view, now = self.view(), self.monotonic()
        if not view.leading:
            return
        if self.reach.reachable(now) and self.probing(now):
            return
        self.sites.read(view.reports, view.beats, now)
        able = sorted(s for s, r in self.sites.fresh(now).items() if r.dns_reachable)
        if not able:
            return  # nobody could do better: keep trying ourselves
        if not self.reach.reachable(now):
            why = f"DNS unreachable for {self.handover_after:.0f}s or more: {self.reach.error}"
        else:
            why = f"our probing stalled (no result for {self.stale_after:.0f}s)"
        log.warning("leadership_handed_over site=%s reason=%s able=%s", self.site, why, able)
        self.coordinator.resign()
        self._resigned = True
        self.journal.event("leadership_handed_over", site=self.site, fence=view.token,
                           reason=why, able=able)  # fmt: skip

    def tick(self, snapshot: HealthSnapshot, read_dns: Callable[[], None]) -> None:
        """Every tick: read DNS (on our reader thread: is our path to it working?), publish our
        report (its heartbeat and reachability move), hand over if we cannot lead."""
        if self._reading is None or self._reading.done():
            self._reading = self._reader.submit(self._read, read_dns)
        self.publish(snapshot)
        self.consider_handover()

    def _read(self, read_dns: Callable[[], None]) -> None:
        try:
            read_dns()
        except DnsFailoverError as e:
            self.reach.failed(self.monotonic(), clean(str(e)))
            return
        except Exception as e:  # a provider's bug: no path we could show working
            log.exception("dns_read_crashed site=%s", self.site)
            self.reach.failed(self.monotonic(), type(e).__name__)
            return
        self.reach.ok(self.monotonic())

    def status(self) -> dict[str, Any]:
        """The coordination part of health.json (and `status`)."""
        view, now = self.view(), self.monotonic()
        self.sites.read(view.reports, view.beats, now)
        since = self.reach.since()
        return {
            "site": view.site,
            "leader": view.leader,
            "leading": view.leading,
            "writing_allowed": view.may_write(now),
            "token": view.token,
            "etcd": "ok" if view.etcd_ok else "unreachable",
            "etcd_error": view.error,
            "etcd_state_for": round(now - view.since, 1) if view.since else None,
            "sites": sorted(self.settings.sites),
            "reporting": sorted(view.reports),
            "fresh": sorted([*self.sites.fresh(now), *([self.site] if self.probing(now) else [])]),
            "quorum": self.settings.k,
            "dns": {
                "reachable": self.reach.reachable(now),
                "for": None if since is None else round(now - since, 1),
                "error": self.reach.error,
            },
            "probing": "moving" if self.probing(now) else "stalled",
            "probing_age": round(now - self._beat_at, 1),
            "others": self.sites.status(now),
        }

    # ------------------------------------------------------------------ each round

    def changed(self) -> bool:
        """A round saw something new; True when we lead (the daemon reconciles everything)."""
        view = self.view()
        if view.shared != self._shared_text:
            self._mirror(view.shared, view.leading)
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

    def take_drill(self, service: str) -> DrillRequest | None:
        """A drill asked on any controller's host for `service`, once (the leader carries it
        out), and out of the shared document; one older than `DRILL_STALE` (its CLI gave up
        long ago) is dropped."""
        request = self.shared.drills.get(service)
        if request is None:
            return None
        handled = f"{request.id}:cancel" if request.cancel else request.id  # a cancel: the run's id
        if handled in self._handled:
            return None
        self._handled.add(handled)
        coordinator, taken = self.coordinator, edit(drill_taken(service, request.id))
        coordinator.submit(lambda etcd: etcd.update(coordinator.state_key, taken),
                           leading_only=True)  # fmt: skip
        if abs(self.clock() - request.at) > DRILL_STALE:
            log.warning("drill_request_stale service=%s run=%s age=%.0fs: not carried out",
                        service, request.id, self.clock() - request.at)  # fmt: skip
            return None
        log.info("drill_request service=%s run=%s cancel=%s", service, request.id, request.cancel)
        return request

    def last_run(self, service: str) -> float | None:
        """When the service's last practice run that started was asked, by any leader."""
        return self.shared.last_run.get(service)

    def _mirror(self, text: str | None, leading: bool = False) -> None:
        """The shared pins, drains and flips into state.json (the pipeline reads them), and,
        on a follower, the leader's practice runs and reports (a new leader ends a run on
        time; `drill` on this host reads its run's report). The
        document comes from outside: whatever is wrong with it is logged and changes nothing."""
        try:
            shared = Shared.parse(text)
            mirror(self.store, shared, self.clock())
            if not leading:
                RunStore(self.store.directory).mirror(shared.runs, shared.ended, self.services())
        except Exception as e:  # anything a writer to the prefix can put there
            log.error("shared_state_not_mirrored error=%s", type(e).__name__ if
                      not isinstance(e, DnsFailoverError) else e)  # fmt: skip
            return
        self.shared, self._shared_text = shared, text

    # ------------------------------------------------------------------ what the leader did

    def share_practice(self, service: str, run: dict[str, Any], on: bool) -> None:
        """A step of the leader's practice run (its report; `on`: not ended) into the shared
        document."""
        coordinator, change = self.coordinator, edit(with_practice(service, run, on))
        coordinator.submit(lambda etcd: etcd.update(coordinator.state_key, change),
                           leading_only=True)  # fmt: skip

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
