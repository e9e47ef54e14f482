"""Backoff per service: after a failure wait tick, 2 x tick, 4 x tick ... (at most a cap).

The daemon keeps one for failed reconciles (no retry storm against a DNS server that refuses)
and one for re-checking changes that are written but not yet served. Time is
`time.monotonic()`, passed in. Imports nothing from the package.
"""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap = first, cap
        self._delay: dict[str, float] = {}
        self._next: dict[str, float] = {}

    def failed(self, key: str, now: float) -> float:
        """Another failure: the delay before the next try (doubled each time)."""
        delay = min(max(self.first, self._delay.get(key, self.first / 2) * 2), self.cap)
        self._delay[key] = delay
        self._next[key] = now + delay
        return delay

    def succeeded(self, key: str) -> None:
        self._delay.pop(key, None)
        self._next.pop(key, None)

    def due(self, key: str, now: float) -> bool:
        return now >= self._next.get(key, 0.0)
