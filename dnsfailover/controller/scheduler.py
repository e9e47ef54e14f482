"""The probe schedule: every probe once at start, then on its interval at a phase of its own.

APScheduler runs the probes on a bounded thread pool and hands each result to `on_result`
(the daemon puts it in its queue; nothing here decides anything). Probes are spread over their
interval by a hash of their key, as Prometheus spreads scrapes, so a thousand probes never
start in the same second. A probe never runs twice at once: a run that finds the last one
still going (a target that hangs until the deadline, when the timeout is as long as the
interval) waits up to one timeout for it to end and then starts at once — dropping it would
delay detecting a hung instance by a whole interval; only a run still blocked after that wait
is skipped (logged `probe_skipped`). A probe that raises (a bug: probes return their
trouble as results) hands on an ERROR result naming the exception, never nothing: a check
whose probe crashes each time must turn inconclusive, then unhealthy, not freeze.
Imports the runtime's jobs, result values and the drills' crashpoint; knows nothing of health,
policy or DNS.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Sequence

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from dnsfailover.controller.runtime import ProbeJob
from dnsfailover.crashpoint import crashpoint
from dnsfailover.results import ProbeResult

log = logging.getLogger(__name__)

MAX_PROBE_THREADS = 64


def _datetime(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


class ProbeScheduler:
    def __init__(
        self,
        jobs: Sequence[ProbeJob],
        on_result: Callable[[ProbeJob, ProbeResult], None],
        clock: Callable[[], float] = time.time,  # the probes' clock: a crashed result's time
    ) -> None:
        self.jobs = list(jobs)
        self._clock = clock
        self._on_result = on_result
        self._locks: dict[str, threading.Lock] = {j.key: threading.Lock() for j in self.jobs}
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        workers = max(4, min(MAX_PROBE_THREADS, len(self.jobs)))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            # Two instances of a job may be started; run() makes the second wait for the first.
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": None},
        )
        now = time.time()
        for job in self.jobs:
            first = now + random.uniform(0, min(job.interval, 1.0) * 0.2)
            phase = zlib.crc32(job.key.encode()) / 2**32 * job.interval
            scheduler.add_job(
                self.run, "date", run_date=_datetime(first), args=[job], id=job.key + "#first"
            )
            scheduler.add_job(
                self.run,
                IntervalTrigger(
                    seconds=job.interval, start_date=_datetime(first + job.timeout + phase)
                ),
                args=[job],
                id=job.key,
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def run(self, job: ProbeJob) -> None:
        """On a scheduler thread: probe once, hand the result on."""
        crashpoint("probe")  # the drills' stuck scheduler (crashpoint.py); nothing otherwise
        lock = self._locks[job.key]
        if not lock.acquire(timeout=job.timeout):
            log.warning("probe_skipped job=%s: the last run has not ended", job.key)
            return
        started, observed_at = time.monotonic(), self._clock()
        try:
            result = job.probe.run(started + job.timeout)
        except Exception as e:  # a probe bug must not kill its schedule, nor freeze its check
            log.exception("probe_crashed job=%s", job.key)
            result = ProbeResult.crashed(
                job.probe.check, e, observed_at, time.monotonic() - started
            )
        finally:
            lock.release()
        self._on_result(job, result)
