"""The state several controllers share, in etcd: the operator's pins and drains, failover
and practice-run (`drill`) requests, the flip history (so that a new leader honours the old
one's hold-down), and the practice runs: the one on now per service, the last one ended, and
when the last run started (so that a new leader ends a run on time, every site's `drill` sees
its run's outcome, and the schedule goes on where it was).

One JSON document at `<prefix>state`, changed only by compare-and-swap (`Etcd.update`): by
any controller's daemon for its host's CLI (pin, release, drain, undrain, failover, drill) and
by the leader (its flips; a request it has carried out or taken; each step of its practice
runs). Every daemon mirrors the pins, drains and flips into its
own state.json, so the reconciler decides from them as it does with one controller, and
`status` shows them on every host. A failover request is carried out by whichever controller
leads: a manual move with its fencing token, its outcome put at `<prefix>results/<id>` for
the CLI that waits on it. A drill request is taken by the leader as a practice intent; its
run's reports come back through `runs` and `ended`, which every follower mirrors (runs.py).
Imports the state values, the run store's request value, config values and the coordination
package's etcd client.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.controller.runs import DrillRequest
from dnsfailover.controller.state import FLIP_HISTORY, Flip, Pin, SavedState, StateStore
from dnsfailover.coordination.etcd import Etcd
from dnsfailover.errors import DnsFailoverError, StateError
from dnsfailover.text import bounded, clean

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """`dnsfailover failover SERVICE --to INSTANCE`, for the leader to carry out."""

    id: str
    to: str
    reason: str
    at: float
    origin: str  # the site whose CLI asked


@dataclass(frozen=True)
class Shared:
    state: SavedState = field(default_factory=SavedState)
    requests: dict[str, Request] = field(default_factory=dict)  # service → request
    # service → the practice run on now, as its report (practice.py): a new leader ends it
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    drills: dict[str, DrillRequest] = field(default_factory=dict)  # service → a drill request
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)  # service → last run ended
    last_run: dict[str, float] = field(default_factory=dict)  # service → when it was asked

    def to_text(self) -> str:
        document = self.state.to_json()
        document.pop("intents")  # flips in progress stay with the controller writing them
        document["requests"] = {s: vars(r) for s, r in self.requests.items()}
        document["runs"] = self.runs
        document["drills"] = {s: vars(r) for s, r in self.drills.items()}
        document["ended"] = self.ended
        document["last_run"] = self.last_run
        return json.dumps(document, sort_keys=True)

    @classmethod
    def parse(cls, text: str | None) -> Shared:
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            state = SavedState.from_json({**data, "intents": {}})
            requests = {s: Request(**r) for s, r in data.get("requests", {}).items()}
            _check_types(state, requests)
            runs, ended = _runs(data.get("runs", {})), _runs(data.get("ended", {}))
            drills = _drills(data.get("drills", {}))
            last_run = _times(data.get("last_run", {}))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            detail = clean(str(e)) if not isinstance(e, RecursionError) else "nested too deep"
            raise StateError(f"the shared state in etcd does not parse: {detail}") from None
        return cls(state, requests, runs, drills, ended, last_run)


def _mapping(found: Any) -> dict[str, Any]:
    """At most 100 entries of a mapping keyed by service (from outside: anyone may write)."""
    if not isinstance(found, dict):
        raise TypeError("a mapping of services expected")
    return dict(list(found.items())[:100])


def _drills(found: Any) -> dict[str, DrillRequest]:
    """The drill requests that are requests: one that is not (a forged or a newer version's
    entry) is logged and left out, never the whole document with it."""
    drills: dict[str, DrillRequest] = {}
    for service, request in _mapping(found).items():
        try:
            drills[clean(str(service), 200)] = DrillRequest.from_json(request)
        except (TypeError, ValueError) as e:
            log.error("drill_request_ignored service=%s error=%s", clean(str(service), 200),
                      clean(str(e)))  # fmt: skip
    return drills


def _runs(found: Any) -> dict[str, dict[str, Any]]:
    """Practice runs (service → its report), bounded and cleaned: from outside too."""
    found = _mapping(found)
    if not all(isinstance(r, dict) for r in found.values()):
        raise TypeError("runs is not a mapping of services to runs")
    return {clean(str(s), 200): bounded(r, items=100) for s, r in found.items()}


def _times(found: Any) -> dict[str, float]:
    found = _mapping(found)
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
               for t in found.values()):  # fmt: skip
        raise TypeError("last_run is not a mapping of services to times")
    return {clean(str(s), 200): float(t) for s, t in found.items()}


def _check_types(state: SavedState, requests: dict[str, Request]) -> None:
    """Anyone who can write the prefix writes this document: times are numbers, names and
    reasons are strings (TypeError otherwise), before anything computes with them."""
    times = [f.at for flips in state.flips.values() for f in flips]
    times += [p.at for p in state.pins.values()] + [d.at for d in state.drains.values()]
    times += [r.at for r in requests.values()]
    texts = [p.instance for p in state.pins.values()] + [f.target for fs in state.flips.values()
                                                         for f in fs]  # fmt: skip
    texts += [r.to for r in requests.values()] + [r.id for r in requests.values()]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
        raise TypeError("a time that is not a number")
    if not all(isinstance(t, str) and len(t) <= 300 for t in texts):
        raise TypeError("a name that is not a short string")


def edit(change: Callable[[Shared], Shared]) -> Callable[[str | None], str]:
    """A compare-and-swap body for `Etcd.update` that changes the parsed document."""
    return lambda text: change(Shared.parse(text)).to_text()


def merge_flips(
    mine: dict[str, tuple[Flip, ...]], theirs: dict[str, tuple[Flip, ...]], now: float
) -> dict[str, tuple[Flip, ...]]:
    """Every flip either side knows of, once, oldest first, within the history kept."""
    merged: dict[str, tuple[Flip, ...]] = {}
    for service in set(mine) | set(theirs):
        seen = {
            (round(f.at, 3), f.target): f
            for f in (*mine.get(service, ()), *theirs.get(service, ()))
        }
        kept = sorted((f for f in seen.values() if now - f.at < FLIP_HISTORY), key=lambda f: f.at)
        merged[service] = tuple(kept)
    return merged


def mirror(store: StateStore, shared: Shared, now: float) -> None:
    """Make state.json's pins and drains the shared ones, and its flips both sides' flips."""
    store.update(
        lambda local: replace(
            local,
            pins=dict(shared.state.pins),
            drains=dict(shared.state.drains),
            flips=merge_flips(local.flips, shared.state.flips, now),
        )
    )


def with_flip(service: str, flip: Flip) -> Callable[[Shared], Shared]:
    return lambda shared: replace(shared, state=shared.state.with_flip(service, flip))


def with_run(service: str, run: dict[str, Any] | None) -> Callable[[Shared], Shared]:
    """The leader's practice run on now for `service` (None: none is on any more)."""

    def change(shared: Shared) -> Shared:
        runs = {k: r for k, r in shared.runs.items() if k != service}
        return replace(shared, runs=runs if run is None else {**runs, service: run})

    return change


def with_practice(service: str, run: dict[str, Any], on: bool) -> Callable[[Shared], Shared]:
    """A step of the leader's practice run `run` (its report): the run on now, or, once it
    ended (or was refused), the service's last ended run; a run that started is the
    schedule's last. (The drill request left when the leader took it: `drill_taken`; a cancel
    asked meanwhile, with the run's id, stays for the leader to take.)"""

    def change(shared: Shared) -> Shared:
        running, last = shared.runs.get(service), shared.ended.get(service)
        if on and last is not None and last.get("id") == run["id"]:
            return shared  # a late step of a run that ended: it never comes back
        if on or (running is not None and running.get("id") == run["id"]):
            shared = with_run(service, run if on else None)(shared)  # not a refusal beside it
        ended = shared.ended if on else {**shared.ended, service: run}
        last_run = shared.last_run
        if run.get("outcome") != "REFUSED":
            at = max(float(run["requested_at"]), last_run.get(service, 0.0))
            last_run = {**last_run, service: at}
        return replace(shared, ended=ended, last_run=last_run)

    return change


def drill_taken(service: str, request_id: str) -> Callable[[Shared], Shared]:
    """Remove the drill request the leader took (carried out, or dropped), if still there."""

    def change(shared: Shared) -> Shared:
        drills = {k: r for k, r in shared.drills.items()
                  if not (k == service and r.id == request_id)}  # fmt: skip
        return replace(shared, drills=drills)

    return change


def request_done(service: str, request_id: str) -> Callable[[Shared], Shared]:
    """Remove the request, if it is still the one carried out (not a newer one)."""

    def change(shared: Shared) -> Shared:
        found = shared.requests.get(service)
        if found is None or found.id != request_id:
            return shared
        requests = {k: r for k, r in shared.requests.items() if k != service}
        return replace(shared, requests=requests)

    return change


class SharedStore:
    """The shared document by compare-and-swap (the operator's verbs use it through
    operator.py), and a failover request with the wait for its outcome."""

    def __init__(self, settings: Coordination, etcd: Etcd | None = None) -> None:
        self.settings = settings
        self.etcd = etcd if etcd is not None else Etcd(settings.etcd)
        self.key = f"{settings.etcd.prefix}state"
        self.results = f"{settings.etcd.prefix}results/"

    def load(self) -> Shared:
        found = self.etcd.get(self.key)
        return Shared.parse(found.value if found else None)

    def change(self, how: Callable[[Shared], Shared]) -> Shared:
        return Shared.parse(self.etcd.update(self.key, edit(how)))

    def request_drill(self, service: str, request: DrillRequest) -> None:
        """Ask the leader for a practice run (or its cancel); a newer request replaces one not
        yet taken. Its run's reports come back through the document (`with_practice`)."""
        self.change(lambda shared: replace(shared, drills={**shared.drills, service: request}))

    def request_failover(self, service: str, to: str, reason: str) -> Request:
        """Pin the service to `to` and ask the leader to move it there now, in one write."""
        request = Request(uuid.uuid4().hex, to, reason, time.time(), self.settings.site)
        pin = Pin(to, reason, request.at)

        def ask(shared: Shared) -> Shared:
            state = replace(shared.state, pins={**shared.state.pins, service: pin})
            return replace(shared, state=state, requests={**shared.requests, service: request})

        self.change(ask)
        return request

    def wait_result(self, service: str, request: Request, timeout: float) -> dict[str, Any]:
        """The leader's outcome of `request`; DnsFailoverError when none came in `timeout`
        (the request is withdrawn then)."""
        key = f"{self.results}{request.id}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.etcd.get(key)
            if found is not None:
                self.etcd.delete(key)
                result: dict[str, Any] = json.loads(found.value)
                return result
            time.sleep(0.1)
        self.withdraw(service, request)
        raise DnsFailoverError(
            f"no leader carried out the failover within {timeout:.0f}s (is a daemon leading? "
            "`dnsfailover status`); the request and its pin are withdrawn"
        )

    def withdraw(self, service: str, request: Request) -> None:
        """Take back a request nobody carried out, and the pin that came with it."""

        def take_back(shared: Shared) -> Shared:
            shared = request_done(service, request.id)(shared)
            pin = shared.state.pins.get(service)
            if pin is None or pin.at != request.at:
                return shared  # a newer pin: not ours to remove
            pins = {k: p for k, p in shared.state.pins.items() if k != service}
            return replace(shared, state=replace(shared.state, pins=pins))

        self.change(take_back)

    def close(self) -> None:
        self.etcd.close()

    def __enter__(self) -> SharedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
