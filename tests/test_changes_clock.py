"""The whole change path in-process, on a simulated clock: the record's rules (machine.py), the
pipeline's steps, the journal, a real state directory and a real zone-file provider.

The daemon's bookkeeping rules — hold-down, the settle window, the flip limit, pins and drains,
conflict then re-read, backoff, a one-shot's retries — are proven here at their edges, in
milliseconds, without a daemon process or the wall clock. Integration tests prove the wiring
once against real servers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from dnsfailover.config.models import Config
from dnsfailover.controller.changes import Changes, Context
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.machine import Rules, Tick, Wake
from dnsfailover.controller.oneshot import OneShot
from dnsfailover.controller.operator import LocalOverrides, Operator
from dnsfailover.controller.pipeline import Pipeline
from dnsfailover.controller.report import Intent, Origin
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import TransientError
from dnsfailover.health import InstanceHealth, State
from dnsfailover.plan import Change
from dnsfailover.providers import Receipt
from dnsfailover.providers.zonefile import ZoneFileProvider
from dnsfailover.rrset import RRset

NAME = "acme.example.test."
START = 1_000_000.0
ZONE = f"""$ORIGIN example.test.
@ 60 IN SOA ns h 1 2 3 4 5
@ 60 IN NS ns
{NAME} 60 IN CNAME a.example.test.
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Zone(ZoneFileProvider):
    """A zone file with two faults a real server cannot produce on demand: a read that fails
    (SERVFAIL) and another writer that changes the record between our read and our write."""

    failing_reads = 0
    rival: str | None = None  # the instance another writer moves the record to, once

    def _read(self, name: str, rdtype: str) -> RRset | None:
        if self.failing_reads:
            self.failing_reads -= 1
            raise TransientError("127.0.0.1:53: SERVFAIL")
        return super()._read(name, rdtype)

    def apply(self, change: Change, fence: int | None = None) -> Receipt:
        if self.rival is not None:
            rival, self.rival = self.rival, None
            before = self.read(NAME, "CNAME")
            super().apply(Change(before, RRset.of(NAME, "CNAME", 60, [f"{rival}.example.test."])))
        return super().apply(change, fence)


@dataclass
class Harness:
    clock: Clock
    zone: Zone
    store: StateStore
    runtime: Runtime
    changes: Changes
    states: dict[str, State] = field(default_factory=dict)
    settle_until: float = -math.inf

    def health(self, key: str) -> dict[str, InstanceHealth]:
        return {
            name: InstanceHealth(
                name,
                state,
                START - 3600,
                MappingProxyType({}),
                START - 3600 if state is State.HEALTHY else None,
            )
            for name, state in self.states.items()
        }

    def set(self, **states: str) -> None:
        codes = {"up": State.HEALTHY, "down": State.UNHEALTHY, "unknown": State.UNKNOWN}
        self.states.update({name: codes[code] for name, code in states.items()})

    def served(self) -> str | None:
        record = ZoneFileProvider._read(self.zone, NAME, "CNAME")  # past the faults
        return None if record is None else sorted(record.values)[0].split(".")[0]

    def events(self) -> list[tuple[str, Any]]:
        entries, _ = self.store.read_audit()
        return [(e["event"], e.get("rule")) for e in entries]

    def wake(self) -> None:
        self.changes.feed("acme", Wake(Intent(trigger_at=self.clock())))

    def tick(self, after: float = 0.0) -> None:
        self.clock.advance(after)
        self.changes.feed("acme", Tick())


def config(tmp_path: Path, **service: Any) -> Config:
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE)
    return Config.model_validate({
        "state_dir": str(tmp_path / "state"),
        "providers": {"dns": {"type": "zonefile", "path": str(zone), "zone": "example.test."}},
        "services": {"acme": {
            "provider": "dns", "name": NAME, "client_verify": False,
            "instances": [{"name": n, "target": f"{n}.example.test.",
                           "acme": {"directory": f"https://{n}.example.test/dir"}}
                          for n in ("a", "b", "c")],
            **service,
        }},
    })  # fmt: skip


@pytest.fixture
def make(tmp_path: Path) -> Any:
    def build(**service: Any) -> Harness:
        settings = config(tmp_path, **service)
        zone = Zone("dns", settings.providers["dns"])  # type: ignore[arg-type]
        runtime = Runtime(settings, {"dns": zone}, [])
        clock = Clock()
        store = StateStore(settings.state_dir)
        harness: Harness
        context = Context(
            runtime=lambda: runtime,
            health=lambda key: harness.health(key),
            settle_until=lambda key: harness.settle_until,
        )
        changes = Changes(Pipeline(store, clock), Journal(store),
                          lambda key: Rules(first_backoff=1.0, verify=False), context,
                          clock=clock)  # fmt: skip
        harness = Harness(clock, zone, store, runtime, changes)
        harness.set(a="up", b="up", c="up")
        return harness

    return build


def test_an_unhealthy_active_moves_to_the_first_healthy_instance(make: Any) -> None:
    h = make()
    h.set(a="down")
    h.wake()
    assert h.served() == "b"
    assert h.events() == [("failover", "failover")]
    assert h.changes.record("acme").active == "b"
    assert h.store.load().flip_times("acme") == (START,)


def test_hold_down_keeps_a_failback_until_its_last_second(make: Any) -> None:
    h = make(hold_down="5m", failback="auto", failback_after="0s")
    h.set(a="down")
    h.wake()
    assert h.served() == "b"
    h.set(a="up")
    h.tick(after=299.0)
    assert h.served() == "b"  # one second short of the hold-down
    h.tick(after=1.0)
    assert h.served() == "a"
    assert [e for e in h.events() if e[0] == "failover"] == [
        ("failover", "failover"),
        ("failover", "failback"),
    ]


def test_hold_down_never_keeps_the_name_on_a_dead_instance(make: Any) -> None:
    h = make(hold_down="5m")
    h.set(a="down")
    h.wake()
    h.set(b="down")
    h.tick(after=10.0)
    assert h.served() == "c"


def test_an_unknown_preferred_candidate_makes_the_change_wait_inside_the_settle_window(
    make: Any,
) -> None:
    h = make()
    h.set(a="down", b="unknown")
    h.settle_until = START + 30
    h.wake()
    assert h.served() == "a"
    h.tick(after=29.0)
    assert h.served() == "a"
    h.tick(after=1.0)  # the window is over: the unknown one is no reason to wait
    assert h.served() == "c"


def test_the_flip_limit_refuses_a_move_away_from_a_healthy_active(make: Any) -> None:
    h = make(max_flips_per_hour=2, failback="auto", failback_after="0s", hold_down="0s")
    h.set(a="down")
    h.wake()
    h.set(a="up")
    h.tick(after=1.0)
    assert h.served() == "a"  # two flips in the hour
    h.set(a="down")
    h.tick(after=1.0)
    assert h.served() == "b"  # leaving a dead active is always allowed
    h.set(a="up")
    h.tick(after=1.0)
    assert h.served() == "b"  # a third failback inside the hour is refused
    assert ("refusal", "flip_limit") in h.events()
    h.tick(after=3600.0)
    assert h.served() == "a"


def test_a_drain_moves_the_name_away_and_an_undrain_does_not_move_it_back(make: Any) -> None:
    h = make()
    operator = Operator(LocalOverrides(h.store), Journal(h.store))
    operator.drain("a", "kernel upgrade")
    h.tick(after=1.0)
    assert h.served() == "b"
    assert operator.undrain("a") and not operator.undrain("a")
    h.tick(after=1.0)
    assert h.served() == "b"
    assert [e for e, _ in h.events()] == ["drain", "failover", "undrain"]


def test_a_pin_holds_the_name_and_a_release_lets_the_policy_act(make: Any) -> None:
    h = make()
    operator = Operator(LocalOverrides(h.store), Journal(h.store))
    operator.pin("acme", "c", "testing c")
    h.tick(after=1.0)
    assert h.served() == "c"
    h.set(a="up", b="up", c="up")
    h.tick(after=1.0)
    assert h.served() == "c"
    pin = operator.release("acme")
    assert pin is not None and pin.instance == "c" and operator.release("acme") is None
    entries, _ = h.store.read_audit()
    assert [(e["event"], e.get("from")) for e in entries if e["event"] == "release"] == [
        ("release", "c")
    ]


def test_a_conflict_is_re_read_and_re_decided_never_overwritten(make: Any) -> None:
    h = make()
    h.set(a="down")
    h.zone.rival = "c"  # another writer moves the record to c between our read and write
    h.wake()
    assert h.served() == "c"  # c is healthy: sticky, not overwritten with b
    assert h.events() == [("conflict", "failover")]
    assert h.changes.record("acme").conflicts == 0


def test_a_failing_dns_server_is_retried_with_backoff_and_the_change_lands(make: Any) -> None:
    h = make()
    h.set(a="down")
    h.zone.failing_reads = 3
    h.wake()
    assert h.served() == "a" and h.changes.record("acme").retry.at == START + 1
    h.tick(after=0.5)
    assert h.zone.failing_reads == 2  # backing off: no read at all
    h.tick(after=0.5)
    assert h.zone.failing_reads == 1 and h.changes.record("acme").retry.at == h.clock() + 2
    h.tick(after=2.0)
    h.tick(after=4.0)
    assert h.served() == "b"
    assert [e for e, _ in h.events()] == ["error", "failover"]  # the same error once


def test_a_one_shot_retries_a_transient_error_twice_then_answers(tmp_path: Path) -> None:
    settings = config(tmp_path)
    zone = Zone("dns", settings.providers["dns"])  # type: ignore[arg-type]
    runtime = Runtime(settings, {"dns": zone}, [])
    health = {"acme": {
        "a": InstanceHealth("a", State.UNHEALTHY, 0.0, MappingProxyType({})),
        "b": InstanceHealth("b", State.HEALTHY, 0.0, MappingProxyType({})),
    }}  # fmt: skip
    clock = Clock()
    store = StateStore(settings.state_dir)
    zone.failing_reads = 2
    with OneShot(runtime, store, health, clock=clock, sleep=clock.advance) as once:
        report = once.change("acme")
    assert report.error is None and report.applied and clock() == START + 1.5
    zone.failing_reads = 10
    with OneShot(runtime, store, health, clock=clock, sleep=clock.advance) as once:
        report = once.change("acme", Intent(Origin.OPERATOR, "c", "test"))
    assert report.error == "127.0.0.1:53: SERVFAIL" and report.transient
    assert zone.failing_reads == 7  # three reads: the first and two retries


def test_the_same_failed_decision_is_journaled_once_and_a_new_error_again(
    tmp_path: Path,
) -> None:
    """A deposed leader refused twice for the same decision: the newer token in the error is
    news, the same refusal again is not."""
    from dnsfailover.controller.report import Report
    from dnsfailover.policy import Decision, Kind

    store = StateStore(tmp_path)
    journal = Journal(store)
    decision = Decision(Kind.MOVE, "a", "b", "failover", "a unhealthy")
    for error in ("fenced: holds epoch=20", "fenced: holds epoch=20", "fenced: holds epoch=31"):
        report = Report("acme", decision=decision, error=error, refused_by_fence=True, fence=9,
                        site="east")  # fmt: skip
        journal.decision(report)
    entries, _ = store.read_audit()
    assert [(e["event"], e["error"], e["site"]) for e in entries] == [
        ("fenced", "fenced: holds epoch=20", "east"),
        ("fenced", "fenced: holds epoch=31", "east"),
    ]
