"""Who may lead, and whose reports count (controller/leadership.py, sitereports.py, reach.py),
on a simulated clock: freshness by the reader's clock, DNS reachability, eligibility, handover."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from dnsfailover.config.models import Coordination
from dnsfailover.controller import sitereports
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.leadership import Leadership
from dnsfailover.controller.reach import Reach
from dnsfailover.controller.state import StateStore
from dnsfailover.coordination.coordinator import View
from dnsfailover.health import HealthSnapshot, InstanceHealth, State

Y, N = State.HEALTHY, State.UNHEALTHY
STALE, HANDOVER = 3.0, 4.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class StubCoordinator:
    """The coordinator seam: a view the test sets; resign() as the real one (stops leading)."""

    def __init__(self) -> None:
        self.current = View("east", leader="east", token=9, leading=True, renewed_at=100.0,
                            deadline=1e9, etcd_ok=True)  # fmt: skip
        self.resigned = 0
        self.published: list[str] = []

    def view(self) -> View:
        return self.current

    def may_write(self) -> bool:
        return self.current.leading

    def resign(self) -> None:
        self.resigned += 1
        self.current = View("east", leader=None, token=None, etcd_ok=True)

    def publish(self, text: str) -> None:
        self.published.append(text)


def health(state: State) -> InstanceHealth:
    return InstanceHealth("a", state, 1.0, MappingProxyType({}), 1.0 if state is Y else None)


def report(site: str, state: State, heartbeat: int, dns: bool = True) -> tuple[str, str]:
    """A site's report and its beat, as it publishes them."""
    snapshot = HealthSnapshot(
        0.0, MappingProxyType({"acme": MappingProxyType({"a": health(state)})})
    )
    return sitereports.build(site, snapshot), sitereports.build_beat(site, heartbeat, dns, None)


@pytest.fixture
def lead(tmp_path: Path) -> Any:
    settings = Coordination.model_validate({
        "site": "east", "sites": ["east", "west", "north"],
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
    })  # fmt: skip
    clock, stub = Clock(), StubCoordinator()
    store = StateStore(tmp_path)
    leadership = Leadership(settings, store, Journal(store), lambda: None,
                            coordinator=stub,  # type: ignore[arg-type]
                            stale_after=STALE, handover_after=HANDOVER,
                            monotonic=clock)  # fmt: skip
    return leadership, stub, clock, store


def with_reports(stub: StubCoordinator, **published: tuple[str, str]) -> None:
    reports = MappingProxyType({site: r for site, (r, _) in published.items()})
    beats = MappingProxyType({site: b for site, (_, b) in published.items()})
    stub.current = View(stub.current.site, stub.current.leader, stub.current.token,
                        stub.current.leading, stub.current.renewed_at, stub.current.deadline,
                        True, reports=reports, beats=beats)  # fmt: skip


def test_a_site_whose_heartbeat_stops_stops_counting_by_the_readers_clock(lead: Any) -> None:
    leadership, stub, clock, _ = lead
    leadership.beat()
    with_reports(stub, west=report("west", Y, 1), north=report("north", Y, 1))
    assert leadership.health("acme", {"a": health(N)})["a"].state is Y  # west + north: 2 of 3
    clock.now += STALE  # their heartbeats have not moved for 3 intervals: still counts
    leadership.beat()
    with_reports(stub, west=report("west", Y, 1), north=report("north", Y, 2))
    clock.now += 0.5  # west has not moved for 3.5 s: stale
    quorum = leadership.health("acme", {"a": health(N)})["a"]
    assert quorum.held and quorum.reason.startswith("split: east unhealthy")
    assert leadership.status()["others"]["west"]["fresh"] is False


def test_our_own_verdicts_stop_counting_when_our_probing_stalls(lead: Any) -> None:
    leadership, stub, clock, _ = lead
    leadership.beat()
    with_reports(stub, west=report("west", N, 1))
    assert leadership.health("acme", {"a": health(N)})["a"].state is N
    clock.now += STALE + 0.1
    with_reports(stub, west=report("west", N, 2))
    quorum = leadership.health("acme", {"a": health(N)})["a"]
    assert quorum.held and quorum.state is State.UNKNOWN  # one fresh verdict of two needed


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"site": "north", "services": {}}',  # another site's report under west's key
        '{"site": "west", "heartbeat": -1, "services": {}}',
        '{"site": "west", "services": {"acme": {"a": {"state": "healthy", "since": "now"}}}}',
        "[" * 60000,
    ],
    ids=["garbage", "other_site", "bad_heartbeat", "bad_time", "deep"],
)
def test_a_report_that_is_not_one_counts_as_no_report(lead: Any, text: str) -> None:
    leadership, stub, _, _ = lead
    leadership.beat()
    with_reports(stub, west=(text, report("west", N, 1)[1]), north=report("north", N, 1))
    quorum = leadership.health("acme", {"a": health(N)})["a"]
    assert quorum.state is N and [v.site for v in quorum.views] == ["east", "north"]


def test_reasons_from_another_site_are_cleaned_and_capped() -> None:
    text, beat = report("west", N, 1)
    document = json.loads(text)
    document["services"]["acme"]["a"]["reason"] = "bad\x00\x1b[31m" + "x" * 100_000
    parsed = sitereports.parse("west", json.dumps(document), beat)
    reason = parsed.verdicts["acme"]["a"].reason
    assert "\x00" not in reason and "\x1b" not in reason and len(reason) < 400


def test_a_report_is_kept_within_its_budget() -> None:
    long = InstanceHealth("a", N, 1.0, MappingProxyType({}))
    snapshot = HealthSnapshot(0.0, MappingProxyType({
        f"s{i}": MappingProxyType({f"i{j}": long for j in range(40)}) for i in range(40)
    }))  # fmt: skip
    assert len(sitereports.build("east", snapshot)) <= sitereports.REPORT_BUDGET


# ----------------------------------------------------------------------------- reach


def test_dns_reachability_ends_after_handover_after_of_failures_and_returns_at_once() -> None:
    reach = Reach(HANDOVER, 0.0)
    assert not reach.reachable(0.0)  # nothing has worked yet
    reach.ok(1.0)
    reach.failed(2.0, "timeout")
    assert reach.reachable(2.0 + HANDOVER - 0.01)
    assert not reach.reachable(2.0 + HANDOVER)
    reach.ok(10.0)
    assert reach.reachable(10.0) and not reach.steady(10.0 + HANDOVER - 0.01)
    assert reach.steady(10.0 + HANDOVER)


# ----------------------------------------------------------------------------- leading


def test_only_a_site_that_reaches_dns_and_probes_campaigns(lead: Any) -> None:
    leadership, _, clock, _ = lead
    leadership.beat()
    assert not leadership.eligible()  # no DNS read has worked yet
    leadership.reach.ok(clock.now)
    assert leadership.eligible()
    clock.now += STALE + 0.1  # our probing stalled
    assert not leadership.eligible()


def test_a_leader_cut_from_dns_hands_over_to_a_site_that_can_reach_it(lead: Any) -> None:
    leadership, stub, clock, store = lead
    leadership.beat()
    leadership.reach.ok(clock.now)
    leadership.reach.failed(clock.now, "127.0.0.1:53: timed out")
    with_reports(stub, west=report("west", Y, 1, dns=True), north=report("north", Y, 1, dns=False))
    clock.now += HANDOVER - 0.1
    leadership.beat()
    leadership.consider_handover()
    assert stub.resigned == 0  # not yet: failing for less than handover_after
    clock.now += 0.1
    leadership.consider_handover()
    assert stub.resigned == 1
    entries, _ = store.read_audit()
    handed = [e for e in entries if e["event"] == "leadership_handed_over"]
    assert len(handed) == 1 and handed[0]["able"] == ["west"]
    assert "DNS unreachable" in handed[0]["reason"]
    # It campaigns again only once its path has worked for handover_after.
    leadership.reach.ok(clock.now)
    assert not leadership.eligible()
    clock.now += HANDOVER
    leadership.beat()
    assert leadership.eligible()


def test_a_leader_cut_from_dns_keeps_leading_when_no_other_site_could_do_better(
    lead: Any,
) -> None:
    leadership, stub, clock, _ = lead
    leadership.beat()
    leadership.reach.ok(clock.now)
    leadership.reach.failed(clock.now, "timed out")
    with_reports(stub, west=report("west", Y, 1, dns=False))
    clock.now += HANDOVER
    leadership.beat()
    leadership.consider_handover()
    assert stub.resigned == 0


def test_a_leader_whose_probing_stalled_hands_over(lead: Any) -> None:
    leadership, stub, clock, _ = lead
    leadership.reach.ok(clock.now)
    with_reports(stub, west=report("west", Y, 1))
    clock.now += STALE + 0.1
    with_reports(stub, west=report("west", Y, 2))
    leadership.consider_handover()
    assert stub.resigned == 1


@pytest.mark.parametrize(
    "text",
    [
        "[" * 60000,
        '{"version": 1, "flips": {"acme": [{"at": "now", "source": null, "target": "a",'
        ' "rule": "x"}]}}',
        '{"version": 1, "pins": {"acme": {"instance": [], "reason": "r", "at": 1}}}',
        '{"version": 1, "requests": {"acme": {"id": 1}}}',
    ],
    ids=["deep", "time_not_a_number", "instance_not_a_string", "request_incomplete"],
)
def test_a_malformed_shared_document_changes_nothing_and_raises_nothing(
    lead: Any, text: str
) -> None:
    """Anyone who can write the etcd prefix writes the shared document: a bad one is refused
    where it is read, and the daemon goes on with what it had."""
    leadership, stub, _, store = lead
    stub.current = View("east", leader="east", token=9, leading=True, renewed_at=100.0,
                        deadline=1e9, etcd_ok=True, shared=text)  # fmt: skip
    assert leadership.changed()  # no exception out of the round
    assert store.load().pins == {} and store.load().flips == {}
    assert leadership.take_request("acme") is None
