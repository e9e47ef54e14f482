"""The daemon's side of practice runs: when one is asked for, or due, it becomes an intent.

A `drill` request the CLI left (practice/requests/ in the state directory, runs.py) or a run
the schedule says is due (`practice.due`: `every`, inside the allowed windows) is turned into
`Intent(Origin.PRACTICE, …)` for the service's record — one more way a change starts, through
the one path (machine.py and practicing.py decide the gates, the move and the return). Only a
leader (or a controller alone) schedules, never inside the settle window, never while a run is
on; a refused scheduled run is asked again only after `practice.RETRY`. It also keeps the
practice metrics and, with several controllers, shares the run on with the other sites.
Imports config values, the practice values, the run store, the report values and telemetry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from dnsfailover.config.models import PracticeSettings, Service
from dnsfailover.controller import practice, telemetry
from dnsfailover.controller.practice import Ask, Practice, Run
from dnsfailover.controller.report import Intent, Origin
from dnsfailover.controller.runs import RunStore
from dnsfailover.metrics import Metrics


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

    def practiced(
        self, service: str, run: Run, current: Run | None, share: Callable[[], None] | None
    ) -> None:
        """A run changed (started, ended, refused): metrics; `share` it when we lead."""
        telemetry.record_practice(self.metrics, service, run, current is not None)
        if share is not None and (current is not None or run.outcome.value != "REFUSED"):
            share()
        if run.outcome.value != "REFUSED":
            self._last_run[service] = max(self._last_run.get(service, 0.0), run.requested_at)

    def resumed(self, service: str, run: Run) -> None:
        telemetry.record_practice(self.metrics, service, run, True)

    def intent(
        self, service: str, settings: Service, may_schedule: bool, now: float
    ) -> Intent | None:
        """A `drill` request from the CLI, else a scheduled run that is due; None: neither.
        `may_schedule`: we lead (or run alone), health has settled, no run is on."""
        config = settings.practice or PracticeSettings()
        request = self.runs.take(service)
        if request is not None:
            ask = Ask.CANCEL if request.cancel else Ask.START
            duration = request.duration or config.duration
            ask_for = Practice(request.id, ask, duration, request.ignore_window)
            return Intent(Origin.PRACTICE, request.to or config.to, request.reason,
                          practice=ask_for)  # fmt: skip
        if not may_schedule:
            return None
        last, tried = self._last_run.get(service), self._schedule_tried.get(service)
        if not practice.due(config, last, tried, now):
            return None
        self._schedule_tried[service] = now
        ask_for = Practice(uuid.uuid4().hex[:12], Ask.START, config.duration, scheduled=True)
        reason = f"scheduled practice run (every {config.every:g}s)"
        return Intent(Origin.PRACTICE, config.to, reason, practice=ask_for)
