"""The provider interface: read one RRset, compare-and-swap it, wait until it is served.

A template method, after octoDNS: the public `apply()` holds the rules every provider shares
(only the managed name and type, never a delete, bounded retries of transient errors, and
"did my earlier attempt already land?" after a timeout); subclasses fill the small `_read`,
`_write`, `_wait` and `_render` hooks. Providers know nothing of health or policy, and
nothing here knows about dry-run: the controller simply does not call `apply()`.
Imports errors and rrset values only.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from dnsfailover.crashpoint import crashpoint
from dnsfailover.errors import (
    ConflictError,
    DnsFailoverError,
    FencedError,
    ProviderError,
    TransientError,
)
from dnsfailover.rrset import Change, Fence, RRset, canonical_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """What a write returns, for `wait()`: the change and how the provider names it."""

    change: Change
    change_id: str = ""  # Route 53 change id; RFC 2136 / zone file: the new SOA serial
    attempts: int = 1


@dataclass(frozen=True)
class ServerView:
    """What one authoritative server (or the API) showed at the last look."""

    server: str
    ok: bool
    detail: str
    seconds: float  # from the start of the wait to the first look that was ok (or to giving up)


@dataclass(frozen=True)
class Propagation:
    complete: bool
    seconds: float
    servers: tuple[ServerView, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        parts = [
            f"{s.server} {'ok' if s.ok else 'NOT YET'} ({s.detail}, {s.seconds:.3f}s)"
            for s in self.servers
        ]
        return "; ".join(parts)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 5.0


class Provider(ABC):
    """One zone at one DNS service."""

    def __init__(
        self,
        name: str,
        zone: str | None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._zone = canonical_name(zone) if zone else None
        self.propagation_timeout = 30.0  # how long wait() may take by default
        self.write_timeout = 10.0  # how long one write attempt may take
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    @property
    def change_timeout(self) -> float:
        """How long apply() and wait() together may take: every attempt, the delays between
        them, and the propagation wait. A change in flight longer than this is overdue."""
        r = self.retry
        delays = sum(min(r.first_delay * r.factor**i, r.max_delay) for i in range(r.attempts - 1))
        return r.attempts * self.write_timeout + delays + self.propagation_timeout

    # ------------------------------------------------------------------ public, shared rules

    @property
    def zone(self) -> str:
        if self._zone is None:
            raise ProviderError(f"provider {self.name}: the zone is not known yet")
        return self._zone

    def zone_of(self, name: str) -> str:
        """The zone, found once from the first managed name when the config does not say."""
        if self._zone is None:
            self._zone = canonical_name(self._discover_zone(name))
            log.info("zone_discovered provider=%s zone=%s", self.name, self._zone)
        return self._zone

    def read(self, name: str, rdtype: str) -> RRset | None:
        """The RRset as the authority holds it now, or None when the name has no such data."""
        self._check_managed(canonical_name(name), rdtype)
        return self._read(canonical_name(name), rdtype.upper())

    def apply(self, change: Change, fence: int | None = None) -> Receipt:
        """Write `change` as a compare-and-swap against `change.before`.

        With a fencing token (several controllers, rrset.Fence), the same atomic request also
        requires the fence record to hold the token read just before (and moves it to ours
        when it was older): FencedError when it holds a newer one, from the read or from the
        server's refusal. Transient failures are retried with backoff, a bounded number of
        times. A conflict after a failed attempt may mean that attempt landed after all:
        re-read, and if the record already holds the new data, the write is done.
        """
        self._check_managed(change.name, change.rdtype)
        delay = self.retry.first_delay
        uncertain = False
        for attempt in range(1, self.retry.attempts + 1):
            try:
                moved = None if fence is None else self._fence_to(change.name, fence)
                crashpoint("fenced_write")  # between the fence's read and the write (drills)
                change_id = self._write(change, moved)
                return Receipt(change, change_id, attempt)
            except ConflictError as e:
                if fence is not None:
                    self._refused_for_fence(change.name, fence, e)
                if uncertain and change.after.same_data(self._read(change.name, change.rdtype)):
                    log.info("write_landed_earlier name=%s attempt=%d", change.name, attempt)
                    return Receipt(change, self._change_id_after_landing(), attempt)
                raise
            except TransientError as e:
                uncertain = True
                if attempt == self.retry.attempts:
                    raise
                log.warning(
                    "write_retry provider=%s name=%s attempt=%d delay=%.2fs error=%s",
                    self.name,
                    change.name,
                    attempt,
                    delay,
                    e,
                )
                self._sleep(delay)
                delay = min(delay * self.retry.factor, self.retry.max_delay)
        raise AssertionError("unreachable")

    def read_fence(self, name: str) -> int | None:
        """The fencing token next to `name` (None when no leader has written one)."""
        name = canonical_name(name)
        self.zone_of(name)
        owner = Fence(name, None, 0).owner
        found = self._read(owner, "TXT")
        try:
            return Fence.parse(name, None if found is None else found.values)
        except ValueError as e:
            raise ProviderError(f"provider {self.name}: {e}") from None

    def _fence_to(self, name: str, token: int) -> Fence:
        """The fence move a write with `token` must make; FencedError if a newer leader's
        token is there already."""
        current = self.read_fence(name)
        if current is not None and current > token:
            raise FencedError(
                f"{Fence(name, current, token).owner} holds epoch={current}, newer than ours "
                f"({token}): another controller leads now; not writing"
            )
        return Fence(name, current, token)

    def _refused_for_fence(self, name: str, token: int, error: ConflictError) -> None:
        """After a refused write: FencedError when a newer token holds the fence now. When
        the fence cannot be read again, the refusal stands as it is (a conflict, never a
        transient error that a retry would send again)."""
        try:
            self._fence_to(name, token)
        except FencedError as e:
            raise FencedError(f"the server refused the write ({error}): {e}") from None
        except DnsFailoverError as e:
            raise ConflictError(f"{error}; the fence could not be read again: {e}") from None

    def move_fence(self, name: str, token: int) -> int | None:
        """A new leader's first step for each managed name: move the fence to its token (a
        compare-and-swap), so that no older leader's write is accepted from now on. Returns
        the token it held."""
        name = canonical_name(name)
        fence = self._fence_to(name, token)
        if fence.before != token:
            try:
                self._move_fence(fence)
            except ConflictError as e:
                self._refused_for_fence(name, token, e)  # a newer leader got there first
                raise
        return fence.before

    def wait(self, receipt: Receipt, timeout: float) -> Propagation:
        """Until every server that must serve the change does, or `timeout` runs out."""
        return self._wait(receipt, timeout)

    def render(self, change: Change) -> str:
        """The change for a human, in this provider's own terms; touches nothing."""
        return f"{change.summary()}\n{self._render(change)}"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; most providers hold none."""

    # ------------------------------------------------------------------ hooks

    def _discover_zone(self, name: str) -> str:
        raise ProviderError(f"provider {self.name}: no zone configured for {name}")

    def _change_id_after_landing(self) -> str:
        return ""

    @abstractmethod
    def _read(self, name: str, rdtype: str) -> RRset | None: ...

    @abstractmethod
    def _write(self, change: Change, fence: Fence | None = None) -> str: ...

    @abstractmethod
    def _move_fence(self, fence: Fence) -> None: ...

    @abstractmethod
    def _wait(self, receipt: Receipt, timeout: float) -> Propagation: ...

    @abstractmethod
    def _render(self, change: Change) -> str: ...

    # ------------------------------------------------------------------ safety

    def _check_managed(self, name: str, rdtype: str) -> None:
        """Only CNAME/A/AAAA of names strictly inside the zone: never SOA, NS or the apex."""
        zone = self.zone_of(name)
        if rdtype.upper() not in ("CNAME", "A", "AAAA"):
            raise ProviderError(f"{name} {rdtype}: dnsfailover only manages CNAME, A and AAAA")
        if name == zone or not name.endswith("." + zone):
            raise ProviderError(f"{name} is not a name below the zone {zone} of {self.name}")
