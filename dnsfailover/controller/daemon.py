"""The daemon: start-up, signals, the controller loop and reload; everything else it feeds.

Probe results (from `ProbeScheduler`), finished steps (from the workers) and coordination
rounds arrive on one queue. The controller thread takes them in order: a result goes to the
health tracker, and a service one of whose instances changed state gets a `Wake`; a finished
step goes back to its service's record as `Done`; every `tick` each service gets a `Tick`
(pins and drains set from the CLI, retries, re-checks of unconfirmed changes). What happens
next is the record's rule (machine.py), carried out by `Changes` (changes.py) on the workers:
one slow DNS server never holds another service, the health bookkeeping, or the watchdog.
Signal handlers only set flags: SIGTERM and SIGINT stop, after waiting up to `shutdown_grace`
for writes in flight; SIGHUP reloads — the new config is built in full before it replaces the
old one (any failure keeps the old one running), health and each service's record carry over,
and steps in flight finish against the provider they started with. systemd is told READY once
the first probe round is in, and WATCHDOG=1 as long as the controller loop turns.
Imports the controller's modules and everything below; only the CLI imports it.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from dnsfailover.config import load_config
from dnsfailover.controller.carrier import Flights
from dnsfailover.controller.controller import Controller
from dnsfailover.controller.door import Door
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.scheduler import ProbeScheduler
from dnsfailover.controller.waiting import Call
from dnsfailover.controller.workers import Flight
from dnsfailover.crashpoint import crashpoint
from dnsfailover.errors import ConfigError, StateError
from dnsfailover.results import ProbeResult
from dnsfailover.systemd import Notifier

log = logging.getLogger(__name__)

COORDINATION = "coordination"  # the coordinator saw something new (leadership, reports)
# None: wake up (a signal); a Call: a control-socket request's part for this thread (door.py)
Item = tuple[ProbeJob, ProbeResult] | Flight | Call | str | None


class Daemon:
    def __init__(
        self,
        config_path: Path,
        dry_run: bool = False,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.queue: queue.Queue[Item] = queue.Queue()
        loaded = load_config(config_path)
        for warning in loaded.warnings:
            log.warning("config_warning %s", warning)
        runtime = Runtime.build(loaded.config, clock)
        self.flights = Flights(len(loaded.config.services), self.queue.put)
        self.controller = Controller(
            runtime, dry_run, self.flights, lambda: self.queue.put(COORDINATION), clock
        )
        self.door = Door(self.controller, self.queue.put)  # the control socket's requests
        self._stop = threading.Event()
        self._reload = False
        self._scheduler: ProbeScheduler | None = None
        self._last_beat = 0.0

    @property
    def runtime(self) -> Runtime:
        return self.controller.runtime

    # ------------------------------------------------------------------ signals

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
        self.queue.put(None)

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True
        self.queue.put(None)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # ------------------------------------------------------------------ start and stop

    def run(self) -> int:
        store = self.controller.store
        if not store.claim_daemon():
            raise StateError(f"another daemon (pid {store.daemon_pid()}) holds {store.directory}")
        try:
            self._check_state_directory()
            self.install_signal_handlers()
            self._serve_metrics()
            self._open_door()
            self.controller.start()
            self._start_probes()
            log.info(
                "started services=%d probes=%d dry_run=%s",
                len(self.runtime.config.services),
                len(self.runtime.jobs),
                self.controller.pipeline.dry_run,
            )
            self._loop()
        finally:
            self._shut_down()
        return 0

    def _serve_metrics(self) -> None:
        listen = self.runtime.config.metrics_listen
        if not listen:
            return
        try:
            self.controller.metrics.serve(listen)
        except OSError as e:
            raise ConfigError(
                f"metrics_listen {listen}: cannot listen there: {e.strerror or e}"
            ) from None

    def _open_door(self) -> None:
        path = self.runtime.config.control_socket
        try:
            self.door.open(path)
        except OSError as e:
            raise ConfigError(
                f"control_socket {path}: cannot listen there: {e.strerror or e} (under the unit, "
                "RuntimeDirectory=dnsfailover makes /run/dnsfailover; by hand, set control_socket "
                "to a path this user may create)"
            ) from None

    def _check_state_directory(self) -> None:
        """Start-up hygiene after a crash: stale temp files, a torn last audit line."""
        store = self.controller.store
        store.check_ownership()  # world-writable or another user's: refused before anything
        for name in store.clean_leftovers():
            log.warning("state_leftover_removed file=%s", name)
        store.load()  # a corrupt state file stops the daemon here, before any DNS change
        _, problems = store.read_audit()
        for problem in problems:
            log.warning("audit_torn_line %s", problem)

    def _start_probes(self) -> None:
        self._scheduler = ProbeScheduler(
            self.runtime.jobs,
            lambda job, result: self.queue.put((job, result)),
            clock=self.controller.clock,
        )
        self._scheduler.start()

    def _stop_probes(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None

    def _shut_down(self) -> None:
        self.notifier.stopping()
        self.door.close()
        self._stop_probes()
        left = self.flights.drain(self.runtime.config.shutdown_grace)
        self._drain_queue(timeout=0.0)  # the outcomes that came in while we waited
        self.controller.stop(left)
        self.controller.store.release_daemon()
        log.info("stopped")

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        next_tick = time.monotonic() + self.controller.tick
        while not self._stop.is_set():
            crashpoint("loop")  # a loop that stops turning, for the watchdog check; else nothing
            wait = next_tick - time.monotonic()
            if self.notifier.watchdog_interval:
                wait = min(wait, self.notifier.watchdog_interval / 2)
            self._drain_queue(timeout=max(0.0, wait))
            if self._reload:
                self._do_reload()
            if self._stop.is_set():
                break
            if time.monotonic() >= next_tick:
                self.cycle()
                next_tick = time.monotonic() + self.controller.tick
            self._beat()

    def _beat(self) -> None:
        """WATCHDOG=1 while the controller loop turns (steps in flight do not hold it)."""
        interval = self.notifier.watchdog_interval
        now = time.monotonic()
        if interval is None or now - self._last_beat >= interval / 2:
            self.notifier.watchdog()
            self._last_beat = now

    def _drain_queue(self, timeout: float) -> None:
        """Take everything queued, in order: results, finished steps, coordination rounds."""
        try:
            item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return
        controller = self.controller
        changed: dict[str, float] = {}  # service → when its first health-changing result ended
        landed: list[Flight] = []
        calls: list[Call] = []
        coordination = False
        while item is not None:
            if isinstance(item, Flight):
                landed.append(item)
            elif isinstance(item, Call):
                calls.append(item)
            elif isinstance(item, str):
                coordination = True
            else:
                controller.observe(*item, changed)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
        stopping = self._stop.is_set()
        for flight in landed:
            controller.land(flight, stopping)
        for call in calls:  # the control socket's requests, on this thread (door.py)
            call.run(controller, stopping)
        controller.publish(changed)
        if not controller.ready and controller.seen_every_probe():
            controller.ready = True
            controller.coordination_changed(force=True)
            self.cycle()
            self.notifier.ready(controller.status_line())
            return
        if coordination and controller.ready and not stopping:
            if controller.coordination_changed():
                self.cycle()
            return
        if controller.ready and not stopping:
            controller.wake(changed)
        if changed or landed:
            controller.write_health()

    def cycle(self) -> None:
        """Silence judged, every service's tick (one's failure never blocks another), then
        report."""
        changed: dict[str, float] = {}
        self.controller.silence(changed)
        if self.controller.ready:
            self.controller.wake(changed)
        self.controller.cycle(self._stop.is_set)
        self.notifier.status(self.controller.status_line())
        self.notifier.watchdog()
        self._last_beat = time.monotonic()

    # ------------------------------------------------------------------ reload

    def _do_reload(self) -> None:
        self._reload = False
        self.notifier.reloading()
        log.info("reload_started path=%s", self.config_path)
        try:
            loaded = load_config(self.config_path)
            runtime = Runtime.build(loaded.config, self.controller.clock)
        except Exception as e:  # a config that raises anything keeps the running one
            reason = str(e).replace("\n", "; ") if isinstance(e, ConfigError) else repr(e)
            log.error("reload_failed: keeping the running config: %s", reason[:2000])
            self.controller.reload_failed(type(e).__name__)
            self.notifier.ready(self.controller.status_line())
            return
        self._stop_probes()
        self.controller.swap(runtime)
        self._start_probes()
        log.info(
            "reload_done services=%d probes=%d", len(runtime.config.services), len(runtime.jobs)
        )
        self.notifier.ready(self.controller.status_line())
