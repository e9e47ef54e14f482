"""The record's TTL (degraded_ttl on and off) and the convergence budget: pure, table-driven."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from dnsfailover.config.models import Service
from dnsfailover.health import InstanceHealth, State
from dnsfailover.plan import make_plan, record_ttl
from dnsfailover.plan.budget import convergence_budget
from dnsfailover.policy import Decision, Kind
from dnsfailover.rrset import RRset

NOW = 100_000.0
NAME = "acme.example.com."


def service(**overrides: Any) -> Service:
    return Service.model_validate({
        "provider": "dns", "name": NAME, "ttl": 60, "hold_down": "5m",
        "checks": {"interval": "10s", "timeout": "3s", "fall": 2},
        "instances": [{"name": n, "target": f"{n}.example.com.",
                       "acme": {"directory": f"https://{n}/dir"}} for n in ("a", "b")],
        **overrides,
    })  # fmt: skip


def health(a: State) -> dict[str, InstanceHealth]:
    return {"a": InstanceHealth("a", a, 0.0, MappingProxyType({})),
            "b": InstanceHealth("b", State.HEALTHY, 0.0, MappingProxyType({}))}  # fmt: skip


KEEP_A = Decision(Kind.KEEP, "a", None, "sticky", "a healthy")
MOVE_B = Decision(Kind.MOVE, "a", "b", "failover", "a unhealthy")


@pytest.mark.parametrize(
    ("decision", "a", "flips", "overrides", "ttl"),
    [
        pytest.param(KEEP_A, State.HEALTHY, (), {}, 60, id="no_degraded_ttl_always_the_ttl"),
        pytest.param(MOVE_B, State.UNHEALTHY, (), {"degraded_ttl": 5}, 5, id="a_flip_is_degraded"),
        pytest.param(KEEP_A, State.UNHEALTHY, (), {"degraded_ttl": 5}, 5,
                     id="degraded_while_the_active_is_unhealthy"),
        pytest.param(KEEP_A, State.HEALTHY, (NOW - 60,), {"degraded_ttl": 5}, 5,
                     id="degraded_for_hold_down_after_a_flip"),
        pytest.param(KEEP_A, State.HEALTHY, (NOW - 301,), {"degraded_ttl": 5}, 60,
                     id="restored_once_stable"),
        pytest.param(KEEP_A, State.UNKNOWN, (), {"degraded_ttl": 5}, None,
                     id="left_alone_while_the_active_is_unknown"),
    ],
)  # fmt: skip
def test_record_ttl(
    decision: Decision,
    a: State,
    flips: tuple[float, ...],
    overrides: dict[str, Any],
    ttl: int | None,
) -> None:
    assert record_ttl(service(**overrides), decision, health(a), flips, NOW) == ttl


def test_a_kept_record_gets_its_ttl_back_as_a_change_of_its_own() -> None:
    svc = service(degraded_ttl=5)
    live = RRset.of(NAME, "CNAME", 5, ["a.example.com."])
    plan = make_plan("acme", svc, KEEP_A, live, ttl=60)
    assert plan.change is not None and plan.ttl_only
    assert plan.change.before == live and plan.change.after.ttl == 60
    assert make_plan("acme", svc, KEEP_A, live, ttl=5).change is None  # already right
    foreign = RRset.of(NAME, "CNAME", 5, ["elsewhere.example.com."])
    assert make_plan("acme", svc, KEEP_A, foreign, ttl=60).change is None  # drift: untouched
    moved = make_plan("acme", svc, MOVE_B, live, ttl=5)
    assert moved.change is not None and not moved.ttl_only and moved.change.after.ttl == 5


def test_degraded_ttl_longer_than_ttl_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="degraded_ttl must not be longer than ttl"):
        service(degraded_ttl=120)


def test_convergence_budget_adds_up_and_reads_well() -> None:
    svc = service(resolver_min_ttl=90, degraded_ttl=5)
    budget = convergence_budget(svc, [0.01, 0.02], [0.03, 0.05, 0.04])
    assert budget.detection == 2 * 10 + 3
    assert budget.client_ttl == 90  # the resolvers' floor raises the record's 60 s
    assert budget.degraded_client_ttl == 90  # ... and the degraded 5 s too
    assert budget.total == pytest.approx(23 + 0.02 + 0.05 + 90)
    assert budget.text() == (
        "detection 23.0s + write 0.02s + propagation 0.04s (p95 0.05s) + client TTL 90s "
        "= 113.1s (90s client TTL while degraded)"
    )
    fresh = convergence_budget(service(), [], [])
    assert "write not measured yet" in fresh.text() and fresh.total == 23 + 60
