"""Practice runs in the state directory, beside state.json (docs/practice-runs.md):

- `practice/<service>.json`: the run on now, saved before its first DNS write and after each
  of its steps, so that a daemon restarted mid-run finds it and ends it on time;
- `practice/reports/<id>.json`: every run's report (its value: timeline, checks, outcome);
- `practice/requests/<service>.json`: a `drill` request the control socket handed in, taken at
  the daemon's next tick (one controller; with several the request travels in etcd, shared.py).

With several controllers a follower keeps copies of the leader's runs (`mirror`): the run on,
so that it ends it on time if it leads next, and every report the leader shared, so that
`drill` waits and `drill --report` reads on any site's host.
Writes are atomic. A file that does not parse is logged and ignored (a run is an exercise:
a torn report must not stop the daemon). Imports the run's value, the atomic writer and the
text cleaner only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnsfailover.atomicfile import atomic_write
from dnsfailover.controller.practice import Run
from dnsfailover.errors import StateError
from dnsfailover.text import clean

log = logging.getLogger(__name__)
KEPT = 500  # reports kept; the oldest go first (a refused scheduled run leaves one too)
LONGEST = 7 * 86400.0  # seconds: the longest run a request may ask for
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a run's id names its report file


@dataclass(frozen=True)
class DrillRequest:
    """`dnsfailover drill`, for the daemon to carry out."""

    id: str
    service: str
    to: str | None
    duration: float | None  # None: the service's `practice.duration`
    reason: str
    at: float
    ignore_window: bool = False
    cancel: bool = False

    @classmethod
    def from_json(cls, data: Any) -> DrillRequest:
        """A request read back (a file, or etcd's shared document: from outside): checked
        field by field, names and the reason cleaned; ValueError or TypeError otherwise."""
        if not isinstance(data, dict):
            raise TypeError("a drill request is not a mapping")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)[:5]}")
        texts = [data.get("id"), data.get("service"), data.get("reason")]
        if not all(isinstance(t, str) for t in texts) or not isinstance(data.get("to"), str | None):
            raise TypeError("id, service and reason are strings, to a string or null")
        duration, at = data.get("duration"), data.get("at")
        for number in (duration, at):
            if isinstance(number, bool) or not isinstance(number, int | float | None):
                raise TypeError("duration and at are numbers")
            if number is not None and not math.isfinite(number):
                raise ValueError("duration and at are finite numbers")
        if at is None:
            raise ValueError("the time it was asked (at) is required")
        if duration is not None and not 0 < duration <= LONGEST:
            days = LONGEST / 86400
            raise ValueError(f"a run lasts more than 0 seconds and at most {days:g} days")
        if not RUN_ID.fullmatch(data["id"]):
            raise ValueError("an id is 1 to 64 letters, digits, _ or -")
        if not all(isinstance(data.get(f, False), bool) for f in ("ignore_window", "cancel")):
            raise TypeError("ignore_window and cancel are booleans")
        to = data.get("to")
        flags = data.get("ignore_window", False), data.get("cancel", False)
        return cls(data["id"], clean(data["service"], 200),
                   None if to is None else clean(to, 200),
                   None if duration is None else float(duration), clean(data["reason"]),
                   float(at), *flags)  # fmt: skip


class RunStore:
    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "practice"
        self.reports = self.directory / "reports"
        self.requests = self.directory / "requests"

    def _write(self, path: Path, document: dict[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, json.dumps(document, indent=2, default=str).encode())
        except OSError as e:
            raise StateError(f"cannot write {path}: {e.strerror or e}") from None

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.error("practice_file_unreadable path=%s error=%s", path, e)
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ runs and reports

    def save(self, service: str, run: Run, extra: dict[str, Any] | None = None) -> None:
        """The run's report; and the service's current run, or none once it ended."""
        document = {"service": service, **run.to_json(), **(extra or {})}
        self._write(self.reports / f"{run.id}.json", document)
        current = self.directory / f"{service}.json"
        if run.on:
            self._write(current, document)
        else:
            on = self._read(current)
            if on is not None and on.get("id") == run.id:  # not a refused one beside it
                with contextlib.suppress(FileNotFoundError):
                    current.unlink()
            self._prune()

    def _prune(self) -> None:
        try:
            reports = sorted(self.reports.glob("*.json"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        for old in reports[:-KEPT]:
            with contextlib.suppress(OSError):
                old.unlink()

    def current(self, service: str) -> Run | None:
        """The run a previous daemon left on, if any."""
        data = self._read(self.directory / f"{service}.json")
        if data is None:
            return None
        try:
            return Run.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            log.error("practice_run_unreadable service=%s error=%s", service, e)
            return None

    def report(self, run_id: str) -> dict[str, Any] | None:
        if not RUN_ID.fullmatch(run_id):
            return None
        return self._read(self.reports / f"{run_id}.json")

    def last_report(self, service: str, succeeded: bool = False) -> dict[str, Any] | None:
        """The service's latest run (that started, or that SUCCEEDED), by when it was asked."""
        found: list[tuple[float, dict[str, Any]]] = []
        for path in self.reports.glob("*.json") if self.reports.is_dir() else ():
            data = self._read(path)
            if data is None or data.get("service") != service or data.get("outcome") == "REFUSED":
                continue
            if succeeded and data.get("outcome") != "SUCCEEDED":
                continue
            try:
                run = Run.from_json(data)  # a report that does not parse is no last run
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                log.error("practice_report_unreadable path=%s error=%s", path, clean(str(e)))
                continue
            found.append((run.requested_at, data))
        return max(found, key=lambda pair: pair[0], default=(0.0, None))[1]

    def mirror(
        self, runs: dict[str, dict[str, Any]], ended: dict[str, dict[str, Any]], services: list[str]
    ) -> None:
        """Several controllers, on a follower: the leader's runs on now (etcd's shared
        document) as this controller's own, so that it ends them on time if it leads next; and
        the reports of those and of each service's last ended (or refused) run, so that `drill`
        here sees its run's steps and outcome."""
        written = False  # a report new here: the oldest may go
        for service in services:
            document = runs.get(service)
            current = self.directory / f"{service}.json"
            try:
                if document is None:
                    current.unlink(missing_ok=True)
                else:
                    report = self._report(service, document)
                    written |= self._keep(self.reports / f"{report['id']}.json", report)
                    self._keep(current, report)
                if service in ended:
                    report = self._report(service, ended[service])
                    written |= self._keep(self.reports / f"{report['id']}.json", report)
            except (OSError, KeyError, TypeError, ValueError, AttributeError, StateError) as e:
                log.error("practice_run_not_mirrored service=%s error=%s", service, clean(str(e)))
        if written:
            self._prune()

    @staticmethod
    def _report(service: str, document: dict[str, Any]) -> dict[str, Any]:
        """The leader's report of a run as we would write it: only a run that parses (from
        outside: nothing else of it is kept)."""
        run = Run.from_json(document)
        if not RUN_ID.fullmatch(run.id):
            raise ValueError("a run id that cannot name a file")
        return {"service": service, **run.to_json()}

    def _keep(self, path: Path, report: dict[str, Any]) -> bool:
        """Write `report` at `path` unless it holds that copy already; True if written."""
        if self._read(path) == report:
            return False
        self._write(path, report)
        return True

    # ------------------------------------------------------------------ requests

    def ask(self, request: DrillRequest) -> None:
        """The CLI's request. Run as root (the shipped unit's state directory is root's to
        reach), its files are given the state directory's owner: the daemon, under its
        dynamic user, must read and remove them, and write its reports beside them."""
        path = self.requests / f"{request.service}.json"
        self._write(path, vars(request))
        if os.geteuid() == 0:
            owner = self.directory.parent.stat()
            for made in (self.directory, self.reports, self.requests, path):
                with contextlib.suppress(OSError):
                    if made.exists():
                        os.chown(made, owner.st_uid, owner.st_gid)

    def take(self, service: str) -> DrillRequest | None:
        """The service's pending request, removed."""
        path = self.requests / f"{service}.json"
        data = self._read(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if data is None:
            return None
        try:
            return DrillRequest.from_json(data)
        except (TypeError, ValueError) as e:
            log.error("drill_request_unreadable service=%s error=%s", service, e)
            return None
