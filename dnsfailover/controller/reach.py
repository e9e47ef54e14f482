"""Whether this site can do the leader's job: reach the DNS service it writes to.

Every tick each controller reads its services' records (leader and followers alike: a
follower must know it could take over), and the leader's writes count too. A site is
DNS-unreachable once its reads and writes have failed (or timed out) without a success for
`handover_after`; it is reachable again with its first success. After it handed leadership
over, it may campaign again only once its path has worked for `handover_after` without a
failure (`steady`), so a path that flaps moves leadership at most once per `handover_after`.
Pure but for a lock (the reads finish on a thread of their own): time is passed in.
Imports nothing from the package.
"""

from __future__ import annotations

import threading


class Reach:
    def __init__(self, handover_after: float, now: float) -> None:
        self.handover_after = handover_after
        self._lock = threading.Lock()
        self._failing_since: float | None = now  # nothing has worked yet: failing from start
        self._ok_since: float | None = None  # the current run of successes began
        self._worked = False
        self.error: str | None = "no DNS read yet"

    def ok(self, now: float) -> None:
        with self._lock:
            if self._ok_since is None:
                self._ok_since = now
            self._failing_since, self.error, self._worked = None, None, True

    def failed(self, now: float, error: str) -> None:
        with self._lock:
            if self._failing_since is None:
                self._failing_since = now
            self._ok_since, self.error = None, error

    def reachable(self, now: float) -> bool:
        """Something worked since the start, and it has not been failing for
        `handover_after`."""
        with self._lock:
            if self._ok_since is not None:
                return True
            failing = self._failing_since
            return self._worked and failing is not None and now - failing < self.handover_after

    def steady(self, now: float) -> bool:
        """Working without a failure for `handover_after`."""
        with self._lock:
            return self._ok_since is not None and now - self._ok_since >= self.handover_after

    def since(self) -> float | None:
        """When the current state (working or failing) began."""
        with self._lock:
            return self._ok_since if self._ok_since is not None else self._failing_since
