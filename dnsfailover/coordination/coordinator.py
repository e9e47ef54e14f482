"""Several controllers, one writer: leadership and every site's report, kept in etcd.

One thread per controller, beside the probes and the write workers (a slow DNS write never
delays a renewal). Each round it
1. renews this controller's lease (or grants a new one once the old is gone),
2. publishes this site's report under the lease (`<prefix>reports/<site>`: its verdicts, when
   they changed) and its beat (`<prefix>beats/<site>`: its probing heartbeat and DNS
   reachability, every round),
3. campaigns — only when the daemon says this site can do the leader's job (`eligible`), and
   not right after a round failed: one transaction creates `<prefix>leader` bound to the
   lease only if it does not exist (create_revision == 0), else reads it. The leader is
   whoever's lease holds the key; the fencing token is the key's create_revision, which only
   grows. A leader asked to `resign` deletes its own key (by that create_revision) and keeps
   its lease and its report,
4. reads every live site's report and beat (bound to a lease: a site whose lease expired has
   none, a key put without one is ignored), and the shared
   state (`<prefix>state`: the operator's pins, drains and failover requests, and the flip
   history, which every controller mirrors into its own state.json),
5. runs the etcd actions the daemon queued (`submit`): the leader's flip records, the outcome
   of a failover request, the steps of its practice runs (those only while it leads).
A round runs every third of the renew deadline, at once when the controller publishes a new
report, and at once when any site's report changes (a watch on `<prefix>reports/`, on a thread
of its own, restarted every WATCH_LIFETIME; if it dies, the next round polls all the same: a
dead watch costs one round, never a decision). Beats change every round and wake nothing: the
daemon hears of a round only when leadership, a report or the shared state changed.
The leader may write only until `deadline` after the send time of its last
successful renewal (shorter than the lease TTL, as Patroni does): past that it stops writing
and says so, whatever the reason (etcd away, this thread starved). The fence in the DNS
(rrset.Fence) covers what a deadline cannot: a process frozen after its check. On a clean stop
the lease is revoked, so that another controller leads at once. etcd trouble never stops the
daemon: every error is kept for status and the next round tries again. A round that fails
after etcd answered (a report etcd refuses, say) never keeps a leader that cannot publish: it
deletes its leader key and campaigns again only after a round has succeeded.
Imports config values, errors and its etcd client; never health, policy or plan.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from dnsfailover.config.models import Coordination
from dnsfailover.coordination.etcd import Etcd, EtcdConflict, EtcdError, KeyValue

log = logging.getLogger(__name__)

WATCH_LIFETIME = 30.0  # seconds one report watch lives before a fresh one replaces it


@dataclass(frozen=True)
class View:
    """What the coordinator knew at its last round."""

    site: str
    leader: str | None = None  # the leading site (None: nobody, or etcd unknown)
    token: int | None = None  # the leader key's create_revision: the fencing token
    leading: bool = False  # this controller holds the leader key with its own lease
    renewed_at: float = -float("inf")  # monotonic send time of the last good renewal
    deadline: float = 0.0
    etcd_ok: bool = False
    error: str | None = None
    since: float = 0.0  # monotonic: when etcd_ok last changed
    reports: Mapping[str, str] = field(default_factory=dict)  # live site → its report (JSON)
    beats: Mapping[str, str] = field(default_factory=dict)  # live site → its beat (JSON)
    shared: str | None = None  # the shared state document (JSON), as last read

    def may_write(self, now: float) -> bool:
        return self.leading and now < self.renewed_at + self.deadline

    def key(self) -> tuple[object, ...]:
        """What the daemon reacts to: leadership, etcd's reachability, the reports."""
        reports = tuple(self.reports.items())
        return (self.leader, self.token, self.leading, self.etcd_ok, reports, self.shared)


class Coordinator:
    def __init__(
        self,
        settings: Coordination,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        etcd: Etcd | None = None,
        eligible: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.site = settings.site
        self.etcd = etcd if etcd is not None else Etcd(settings.etcd)
        self.on_change = on_change
        self.clock = clock
        self.eligible = eligible  # may this site campaign now (asked every round)
        self._resign = False  # asked to hand leadership over: delete our key next round
        self._last_round_ok = True
        prefix = settings.etcd.prefix
        self.leader_key = f"{prefix}leader"
        self.reports_prefix = f"{prefix}reports/"
        self.beats_prefix = f"{prefix}beats/"
        self.state_key = f"{prefix}state"
        self.results_prefix = f"{prefix}results/"
        self.deadline = settings.etcd.deadline
        self.round = min(1.0, self.deadline / 3)
        self._lease: int | None = None
        self._lease_at = -float("inf")
        self._report: str | None = None  # what this site wants published
        self._published: str | None = None
        self._beat: str | None = None  # this site's beat, put every round
        # etcd writes queued by the daemon, each with whether only a leader may make it
        self._actions: list[tuple[Callable[[Etcd], object], bool]] = []
        self._view = View(self.site, deadline=self.deadline)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the daemon's side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="coordination", daemon=True)
        self._thread.start()
        watcher = threading.Thread(target=self._watch, name="coordination-watch", daemon=True)
        watcher.start()

    def view(self) -> View:
        with self._lock:
            return self._view

    def may_write(self) -> bool:
        return self.view().may_write(self.clock())

    def publish(self, report: str, beat: str | None = None) -> None:
        """This site's report (sent by the next round, which starts now when it changed) and
        its beat (sent every round)."""
        with self._lock:
            changed = report != self._report
            self._report = report
            if beat is not None:
                self._beat = beat
        if changed:
            self._wake.set()

    def resign(self) -> None:
        """Stop leading now (no write from here on) and delete our leader key next round."""
        with self._lock:
            self._resign = True
            self._view = _with(self._view, leading=False)
        self._wake.set()

    def submit(self, action: Callable[[Etcd], object], leading_only: bool = False) -> None:
        """An etcd write for the next round (which starts now); kept for the round after when
        etcd does not answer. `leading_only`: dropped by a round that finds us not leading (a
        leader's step of its practice run must not land after another leader took over)."""
        with self._lock:
            self._actions.append((action, leading_only))
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the rounds; revoke the lease so that another controller leads at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._lease is not None:
            try:
                self.etcd.revoke(self._lease)
                log.info("coordination_lease_revoked site=%s", self.site)
            except EtcdError as e:
                log.warning("coordination_revoke_failed site=%s error=%s", self.site, e)
        self.etcd.close()

    # ------------------------------------------------------------------ the rounds

    def _watch(self) -> None:
        """Wake a round at once when any site's report changes."""
        while not self._stop.is_set():
            try:
                for _ in self.etcd.watch(self.reports_prefix, WATCH_LIFETIME, self._stop):
                    self._wake.set()
            except EtcdError as e:
                log.debug("coordination_watch_failed site=%s error=%s", self.site, e)
                self._stop.wait(self.round)  # the rounds poll meanwhile

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            try:
                self.step()
            except Exception:  # a bug here must not end coordination for good
                log.exception("coordination_round_crashed site=%s", self.site)
            self._wake.wait(max(0.0, self.round - (self.clock() - started)))
            self._wake.clear()

    def step(self) -> None:
        """One round (public for tests that drive the coordinator by hand)."""
        before = self.view()
        try:
            view = self._round(before)
            self._last_round_ok = True
        except EtcdError as e:
            self._last_round_ok = False
            view = self._failed(before, str(e))
            if view.leading and view.token is not None:
                view = self._step_down(view)
        if view.etcd_ok != before.etcd_ok:
            view = _with(view, since=self.clock())
        with self._lock:
            self._view = view
        self._tell(before, view)
        if view.key() != before.key():
            self.on_change()

    def _round(self, before: View) -> View:
        ttl = self.settings.etcd.lease_ttl
        sent = self.clock()
        if self._lease is not None and self.etcd.keepalive(self._lease) <= 0:
            log.warning("coordination_lease_expired site=%s", self.site)
            self._lease = None
        if self._lease is None:
            self._lease, granted = self.etcd.grant(ttl)
            self._published = None  # the old lease took the report with it
            log.info("coordination_lease site=%s ttl=%ss", self.site, granted)
        self._lease_at = sent
        with self._lock:
            report, beat = self._report, self._beat
        if report is not None and report != self._published:
            self.etcd.put(f"{self.reports_prefix}{self.site}", report, self._lease)
            self._published = report
        if beat is not None:
            self.etcd.put(f"{self.beats_prefix}{self.site}", beat, self._lease)
        with self._lock:
            resign, self._resign = self._resign, False
        holder: KeyValue | None
        if resign and before.token is not None:
            self.etcd.delete_if_created(self.leader_key, before.token)
            log.warning("leadership_resigned site=%s token=%s", self.site, before.token)
            holder = self.etcd.get(self.leader_key)
        elif self._last_round_ok and self.eligible():
            _, holder = self.etcd.create_or_get(self.leader_key, self.site, self._lease)
        else:
            holder = self.etcd.get(self.leader_key)
        leading = holder is not None and holder.lease == self._lease and not self._resign
        reports = self._live(self.reports_prefix)
        beats = self._live(self.beats_prefix)
        self._run_actions(leading)
        shared = self.etcd.get(self.state_key)
        return View(
            self.site,
            leader=holder.value if holder else None,
            token=holder.create_revision if holder else None,
            leading=leading,
            renewed_at=sent if leading else before.renewed_at,
            deadline=self.deadline,
            etcd_ok=True,
            since=before.since,
            reports=MappingProxyType(reports),
            beats=MappingProxyType(beats),
            shared=shared.value if shared else None,
        )

    def _live(self, prefix: str) -> dict[str, str]:
        """Every site's key under `prefix` that lives and dies with its site's lease."""
        return {kv.key[len(prefix) :]: kv.value for kv in self.etcd.get_prefix(prefix) if kv.lease}

    def _run_actions(self, leading: bool) -> None:
        while True:
            with self._lock:
                if not self._actions:
                    return
                action, leading_only = self._actions[0]
            try:
                if leading_only and not leading:
                    log.warning("coordination_action_dropped site=%s: a leader's, and we do "
                                "not lead", self.site)  # fmt: skip
                else:
                    action(self.etcd)  # EtcdError: it stays queued for the next round
            except EtcdConflict as e:  # etcd answers: try again next round, the round goes on
                log.warning("coordination_action_deferred site=%s error=%s", self.site, e)
                return
            except EtcdError:
                raise
            except Exception:  # e.g. a shared document that does not parse: it never will
                log.exception("coordination_action_dropped site=%s", self.site)
            with self._lock:
                self._actions.pop(0)

    def _step_down(self, view: View) -> View:
        """A failed round while leading: give the key up if etcd still answers that."""
        assert view.token is not None
        try:
            if self.etcd.delete_if_created(self.leader_key, view.token):
                log.error("leadership_given_up site=%s: this round failed (%s)",
                          self.site, view.error)  # fmt: skip
                return _with(view, leading=False)
        except EtcdError:
            pass  # etcd away: the deadline ends our writes, the lease TTL our key
        return view

    def _failed(self, before: View, error: str) -> View:
        """etcd did not answer: keep what we knew, but leadership ends with the deadline, and
        the lease is surely gone once its TTL has passed since the last renewal."""
        now = self.clock()
        if self._lease is not None and now - self._lease_at > self.settings.etcd.lease_ttl:
            self._lease = None
        leading = before.leading and before.may_write(now)  # past the deadline: step down
        return _with(before, etcd_ok=False, error=error, leading=leading)

    def _tell(self, before: View, after: View) -> None:
        if after.leading and not before.leading:
            log.warning("leadership_acquired site=%s token=%s", self.site, after.token)
        if before.leading and not after.leading:
            log.warning(
                "leadership_lost site=%s leader=%s: not writing", self.site, after.leader or "?"
            )
        if before.etcd_ok and not after.etcd_ok:
            log.error("coordination_etcd_unreachable site=%s error=%s", self.site, after.error)
        if after.etcd_ok and not before.etcd_ok:
            log.info("coordination_etcd_reachable site=%s leader=%s", self.site, after.leader)


def _with(view: View, **changes: object) -> View:
    return replace(view, **changes)  # type: ignore[arg-type]
