"""The operator's verbs — pin, release, drain, undrain — once, on either of two stores.

The overrides (pins and drains) live in the state directory's state.json with one controller
(`LocalOverrides`), and in etcd's shared document with several (`SharedOverrides`; every daemon
mirrors them into its state.json, leadership.py). `Operator` changes them by one
read-modify-write on whichever store it is given and writes one journal entry per verb that
changed something, the same entry for both stores: `pin` (to, reason), `release` (from),
`drain` (instance, reason), `undrain` (instance). A failover request for the leader
(`SharedStore.request_failover`) is the coordinated form of `failover`, in shared.py.
Imports the state values and store, the shared store and the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from dnsfailover.controller.journal import Journal
from dnsfailover.controller.shared import Shared, SharedStore
from dnsfailover.controller.state import Drain, Pin, SavedState, StateStore

Change = Callable[[SavedState], SavedState]


class Overrides(Protocol):
    """Where pins and drains live: one read-modify-write, returning (before, after)."""

    def update(self, change: Change) -> tuple[SavedState, SavedState]: ...


class LocalOverrides:
    """state.json, under its lock (one controller)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def update(self, change: Change) -> tuple[SavedState, SavedState]:
        seen: list[SavedState] = []

        def apply(state: SavedState) -> SavedState:
            seen[:] = [state]
            return change(state)

        after = self.store.update(apply)
        return seen[0], after


class SharedOverrides:
    """etcd's shared document, by compare-and-swap (several controllers)."""

    def __init__(self, shared: SharedStore) -> None:
        self.shared = shared

    def update(self, change: Change) -> tuple[SavedState, SavedState]:
        seen: list[SavedState] = []

        def apply(document: Shared) -> Shared:
            seen[:] = [document.state]  # a retried swap runs again: the last one counts
            return replace(document, state=change(document.state))

        after = self.shared.change(apply)
        return seen[-1], after.state


class Operator:
    def __init__(self, overrides: Overrides, journal: Journal, site: str | None = None) -> None:
        self.overrides = overrides
        self.journal = journal
        self.site = site  # several controllers: the site whose operator acted
        self.clock = time.time

    def _note(self, event: str, service: str | None = None, **fields: Any) -> None:
        if self.site is not None:
            fields["site"] = self.site
        self.journal.event(event, service, **fields)

    def pin(self, service: str, instance: str, reason: str) -> None:
        pin = Pin(instance, reason, self.clock())
        self.overrides.update(lambda s: replace(s, pins={**s.pins, service: pin}))
        self._note("pin", service, to=instance, reason=reason)

    def release(self, service: str) -> Pin | None:
        """Remove the service's pin; the pin that was removed, or None if there was none."""
        before, _ = self.overrides.update(
            lambda s: replace(s, pins={k: p for k, p in s.pins.items() if k != service})
        )
        pin = before.pins.get(service)
        if pin is not None:
            self._note("release", service, **{"from": pin.instance})
        return pin

    def drain(self, instance: str, reason: str) -> None:
        drain = Drain(reason, self.clock())
        self.overrides.update(lambda s: replace(s, drains={**s.drains, instance: drain}))
        self._note("drain", instance=instance, reason=reason)

    def undrain(self, instance: str) -> bool:
        """End a drain; False if the instance was not drained."""
        before, _ = self.overrides.update(
            lambda s: replace(s, drains={k: d for k, d in s.drains.items() if k != instance})
        )
        found = instance in before.drains
        if found:
            self._note("undrain", instance=instance)
        return found
