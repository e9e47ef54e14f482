"""The daemon's side of practice runs: when one is asked for, or due, it becomes an intent.

A `drill` request the control socket left (practice/requests/ in the state directory, runs.py),
or, with several controllers, one asked on any site's host and relayed by etcd to the leader,
or a run the schedule says is due (`practice.due`: `every` since the last run any leader
started, inside the allowed windows) is turned into
`Intent(Origin.PRACTICE, …)` for the service's record — one more way a change starts, through
the one path (machine.py and practicing.py decide the gates, the move and the return). Only a
leader (or a controller alone) schedules, never inside the settle window, never while a run is
on; a refused scheduled run is asked again only after `practice.RETRY_SCHEDULE`. It also keeps the
practice metrics.
Imports config values, the practice values, the run store, the report values and telemetry.
"""

from __future__ import annotations

import logging
import uuid

from dnsfailover.config.models import PracticeSettings, Service
from dnsfailover.controller import practice, telemetry
from dnsfailover.controller.practice import Ask, Practice, Run
from dnsfailover.controller.report import Intent, Origin
from dnsfailover.controller.runs import DrillRequest, RunStore
from dnsfailover.metrics import Metrics

log = logging.getLogger(__name__)


class Drills:
    def __init__(self, runs: RunStore, metrics: Metrics) -> None:
        self.runs = runs
        self.metrics = metrics
        self._last_run: dict[str, float] = {}  # service → when its last run was asked
        self._schedule_tried: dict[str, float] = {}  # service → a scheduled run last asked

    def start(self, key: str, service: Service, now: float, on: bool) -> None:
        """A service at start or reload: what the run reports remember."""
        last = self.runs.last_report(key)
        if last is not None:
            self._last_run[key] = float(last.get("requested_at") or 0)
        succeeded = self.runs.last_report(key, succeeded=True)
        since = float(succeeded.get("ended_at") or now) if succeeded else now
        telemetry.init_practice(self.metrics, key, service, since, on)

    def practiced(self, service: str, run: Run, on: bool) -> None:
        """A run changed (started, a step, ended, refused); `on`: the service has a run on."""
        telemetry.record_practice(self.metrics, service, run, on)
        if run.outcome.value != "REFUSED":
            self._last_run[service] = max(self._last_run.get(service, 0.0), run.requested_at)

    def resumed(self, service: str, run: Run) -> None:
        telemetry.record_practice(self.metrics, service, run, True)

    def intent(
        self,
        service: str,
        settings: Service,
        may_schedule: bool,
        now: float,
        relayed: DrillRequest | None = None,
        last_shared: float | None = None,
    ) -> Intent | None:
        """A `drill` request (the control socket's, else `relayed` from another site through
        etcd), else a scheduled run that is due; None: neither. `may_schedule`: we lead (or run
        alone), health has settled, no run is on; `last_shared`: when the last run any leader
        started was asked (the schedule goes on from there)."""
        config = settings.practice or PracticeSettings()
        request = self.runs.take(service) or relayed
        names = [i.name for i in settings.instances]
        if request is not None and request.to is not None and request.to not in names:
            log.error("drill_request_refused service=%s run=%s: no instance %r", service,
                      request.id, request.to)  # fmt: skip
            request = None  # checked where it was asked; from etcd or a file: checked again
        if request is not None:
            ask = Ask.CANCEL if request.cancel else Ask.START
            duration = request.duration or config.duration
            ask_for = Practice(request.id, ask, duration, request.ignore_window)
            return Intent(Origin.PRACTICE, request.to or config.to, request.reason,
                          practice=ask_for)  # fmt: skip
        if not may_schedule:
            return None
        last, tried = self._last_run.get(service), self._schedule_tried.get(service)
        if last_shared is not None:
            last = max(last or 0.0, last_shared)
        if not practice.due(config, last, tried, now):
            return None
        self._schedule_tried[service] = now
        ask_for = Practice(uuid.uuid4().hex[:12], Ask.START, config.duration, scheduled=True)
        reason = f"scheduled practice run (every {config.every:g}s)"
        return Intent(Origin.PRACTICE, config.to, reason, practice=ask_for)
