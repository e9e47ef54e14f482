"""Steps off the controller thread: a small pool that runs each service's step in flight.

The controller thread only feeds events and records. A step (reading the record and deciding,
the compare-and-swap write and the wait until every authoritative server serves it, a re-check,
a fence's move, a client's check) runs here; its outcome comes back through `done`, which the
daemon turns into a queue item for the controller thread. A pool has at most one flight per
service: the service's next step waits for the outcome, while every other service is decided
and written as if nothing were happening. The threads are daemon threads: a write
still running after the shutdown grace must not keep the process alive (concurrent.futures
would join it at exit). Nothing here knows about DNS or policy.
Imports nothing from the package.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)

MAX_WORKERS = 16


@dataclass
class Flight:
    """One service's change while it runs: what it is, since when, and for how long it may."""

    service: str
    kind: Enum  # the step (machine.Do)
    payload: Any  # the step's report: the one it started with, then the one it returned
    owner: Any  # the runtime whose provider runs it (kept open until the flight lands)
    timeout: float  # seconds it may take (the provider's write and propagation budget)
    started: float = 0.0  # time.monotonic()
    finished: bool = False  # the work returned; the controller has not landed it yet

    def age(self, now: float) -> float:
        return now - self.started

    def overdue(self, now: float) -> bool:
        return self.age(now) > self.timeout


class Workers:
    def __init__(self, size: int, done: Callable[[Flight], None]) -> None:
        self._done = done
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}
        self._work: queue.Queue[tuple[Flight, Callable[[], object]] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"dns-write-{n}", daemon=True)
            for n in range(max(1, min(MAX_WORKERS, size)))
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            self._run(*item)

    def busy(self, service: str) -> bool:
        with self._lock:
            return service in self._flights

    def flights(self) -> list[Flight]:
        with self._lock:
            return list(self._flights.values())

    def submit(self, flight: Flight, work: Callable[[], object]) -> None:
        with self._lock:
            if flight.service in self._flights:
                raise RuntimeError(f"{flight.service} already has a change in flight")
            flight.started = time.monotonic()
            self._flights[flight.service] = flight
        self._work.put((flight, work))

    def _run(self, flight: Flight, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # steps do not raise; a bug must still land the flight
            log.exception("write_crashed service=%s", flight.service)
        finally:
            flight.finished = True
            self._done(flight)

    def land(self, flight: Flight) -> None:
        """The controller thread took the outcome: the service may get its next change."""
        with self._lock:
            if self._flights.get(flight.service) is flight:
                del self._flights[flight.service]

    def drain(self, grace: float) -> list[Flight]:
        """Wait up to `grace` seconds for the flights in progress; return those still running."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if all(f.finished for f in self.flights()):
                break
            time.sleep(0.02)
        for _ in self._threads:
            self._work.put(None)  # idle threads end; a busy one ends with the process
        return [f for f in self.flights() if not f.finished]
