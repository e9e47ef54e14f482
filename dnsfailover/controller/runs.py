"""Practice runs in the state directory, beside state.json (docs/practice-runs.md):

- `practice/<service>.json`: the run on now, saved before its first DNS write and after each
  of its steps, so that a daemon restarted mid-run finds it and ends it on time;
- `practice/reports/<id>.json`: every run's report (its value: timeline, checks, outcome);
- `practice/requests/<service>.json`: a `drill` request from the CLI, taken by the daemon at
  its next tick (until the control socket carries it).

Writes are atomic. A file that does not parse is logged and ignored (a run is an exercise:
a torn report must not stop the daemon). Imports the run's value and the atomic writer only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnsfailover.atomicfile import atomic_write
from dnsfailover.controller.practice import Run
from dnsfailover.errors import StateError

log = logging.getLogger(__name__)
KEPT = 500  # reports kept; the oldest go first (a refused scheduled run leaves one too)


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
        except (KeyError, TypeError, ValueError) as e:
            log.error("practice_run_unreadable service=%s error=%s", service, e)
            return None

    def report(self, run_id: str) -> dict[str, Any] | None:
        return self._read(self.reports / f"{run_id}.json")

    def last_report(self, service: str, succeeded: bool = False) -> dict[str, Any] | None:
        """The service's latest run (that started, or that SUCCEEDED), by when it was asked."""
        found: list[dict[str, Any]] = []
        for path in self.reports.glob("*.json") if self.reports.is_dir() else ():
            data = self._read(path)
            if data is None or data.get("service") != service or data.get("outcome") == "REFUSED":
                continue
            if succeeded and data.get("outcome") != "SUCCEEDED":
                continue
            found.append(data)
        return max(found, key=lambda d: float(d.get("requested_at") or 0), default=None)

    def mirror(self, runs: dict[str, dict[str, Any]], services: list[str]) -> None:
        """Several controllers, on a follower: the leader's runs on now (etcd's shared
        document) as this controller's own, so that it ends them on time if it leads next."""
        for service in services:
            document = runs.get(service)
            current = self.directory / f"{service}.json"
            try:
                if document is None:
                    current.unlink(missing_ok=True)
                else:
                    Run.from_json(document)  # from outside: saved only if it is a run
                    self._write(current, {**document, "service": service})
            except (OSError, KeyError, TypeError, ValueError, StateError) as e:
                log.error("practice_run_not_mirrored service=%s error=%s", service, e)

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
            return DrillRequest(**data)
        except TypeError as e:
            log.error("drill_request_unreadable service=%s error=%s", service, e)
            return None
