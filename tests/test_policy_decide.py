"""The policy as a decision table: one named case per rule."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from dnsfailover.config.models import Service
from dnsfailover.health import InstanceHealth, State
from dnsfailover.policy import Kind, PolicyInput, decide

Y, N, K = State.HEALTHY, State.UNHEALTHY, State.UNKNOWN
NOW = 100_000.0


def service(**overrides: Any) -> Service:
    return Service.model_validate({
        "provider": "dns", "name": "acme.example.com.", "hold_down": "5m",
        "failback_after": "10m", "max_flips_per_hour": 3,
        "instances": [{"name": n, "target": f"{n}.example.com.",
                       "acme": {"directory": f"https://{n}/dir"}} for n in ("a", "b", "c")],
        **overrides,
    })  # fmt: skip


def health(
    states: str, since: float = NOW - 3600, passing: float | None = None
) -> dict[str, InstanceHealth]:
    """'YNK' → a healthy, b unhealthy, c unknown; healthy ones passing every probe since
    `passing` (default: since they became healthy)."""
    codes = {"Y": Y, "N": N, "K": K}
    return {
        name: InstanceHealth(
            name,
            codes[code],
            None if code == "K" else since,
            MappingProxyType({}),
            (since if passing is None else passing) if code == "Y" else None,
        )
        for name, code in zip("abc", states, strict=True)
    }


CASES = [
    # id, states, current, extra input, service overrides, expected (kind, target, rule)
    ("sticky_while_active_healthy", "YYY", "b", {}, {}, (Kind.KEEP, None, "sticky")),
    ("failover_to_first_healthy_in_order", "NNY", "a", {}, {}, (Kind.MOVE, "c", "failover")),
    ("failover_prefers_list_order", "NYY", "a", {}, {}, (Kind.MOVE, "b", "failover")),
    ("sticky_when_primary_recovers", "YYN", "b", {}, {}, (Kind.KEEP, None, "sticky")),
    (
        "unknown_preferred_waits_inside_the_settle_window",
        "NKY",
        "a",
        {"settle_until": NOW + 10},
        {},
        (Kind.KEEP, None, "unknown"),
    ),
    (
        "unknown_is_no_candidate_after_the_settle_window",
        "NKY",
        "a",
        {"settle_until": NOW - 1},
        {},
        (Kind.MOVE, "c", "failover"),
    ),
    (
        "dead_active_moves_at_once_when_the_unknown_is_less_preferred",
        "NYK",
        "a",
        {"settle_until": NOW + 10},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "unknown_active_waits_inside_the_settle_window",
        "KYY",
        "a",
        {"settle_until": NOW + 10},
        {},
        (Kind.KEEP, None, "unknown"),
    ),
    (
        "unknown_active_is_left_after_the_settle_window",
        "KYY",
        "a",
        {"settle_until": NOW - 1},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "no_alarm_while_an_unknown_may_still_settle",
        "NNK",
        "a",
        {"settle_until": NOW + 10},
        {},
        (Kind.KEEP, None, "unknown"),
    ),
    (
        "unknown_alone_after_the_window_is_fail_static",
        "KNK",
        "a",
        {},
        {},
        (Kind.ALARM, None, "all_down"),
    ),
    ("fail_static_when_all_down", "NNN", "a", {}, {}, (Kind.ALARM, None, "all_down")),
    ("never_moves_to_unhealthy", "NNN", "b", {}, {}, (Kind.ALARM, None, "all_down")),
    (
        "hold_down_never_keeps_a_dead_active",
        "NYY",
        "a",
        {"flips": (NOW - 60,)},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "hold_down_over_allows_flip",
        "NYY",
        "a",
        {"flips": (NOW - 301,)},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "flip_limit_warns_but_never_keeps_a_dead_active",
        "NYY",
        "a",
        {"flips": (NOW - 3000, NOW - 2000, NOW - 1000)},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "flip_limit_refuses_failback",
        "YYY",
        "b",
        {"flips": (NOW - 3000, NOW - 2000, NOW - 1000)},
        {"failback": "auto"},
        (Kind.REFUSE, "a", "flip_limit"),
    ),
    (
        "pin_pull_back_respects_hold_down",
        "YYY",
        "a",
        {"pin": "c", "flips": (NOW - 10,)},
        {},
        (Kind.REFUSE, "c", "hold_down"),
    ),
    (
        "pin_pull_off_a_dead_active_ignores_hold_down",
        "NYY",
        "a",
        {"pin": "c", "flips": (NOW - 10,)},
        {},
        (Kind.MOVE, "c", "pin"),
    ),
    (
        "old_flips_do_not_count",
        "NYY",
        "a",
        {"flips": (NOW - 9000, NOW - 8000, NOW - 1000)},
        {},
        (Kind.MOVE, "b", "failover"),
    ),
    (
        "failback_auto_after_failback_after",
        "YYY",
        "b",
        {},
        {"failback": "auto"},
        (Kind.MOVE, "a", "failback"),
    ),
    (
        "failback_auto_waits_for_failback_after",
        "YYY",
        "b",
        {"since": NOW - 60},
        {"failback": "auto"},
        (Kind.KEEP, None, "failback_wait"),
    ),
    (
        "failback_auto_waits_for_steady_passes",  # healthy an hour, but a probe failed 60 s ago
        "YYY",
        "b",
        {"passing": NOW - 60},
        {"failback": "auto"},
        (Kind.KEEP, None, "failback_wait"),
    ),
    (
        "failback_auto_respects_hold_down",
        "YYY",
        "b",
        {"flips": (NOW - 10,)},
        {"failback": "auto"},
        (Kind.REFUSE, "a", "hold_down"),
    ),
    (
        "failback_manual_is_sticky",
        "YYY",
        "c",
        {},
        {"failback": "manual"},
        (Kind.KEEP, None, "sticky"),
    ),
    (
        "drained_active_moves_away",
        "YYY",
        "a",
        {"drained": frozenset({"a"})},
        {},
        (Kind.MOVE, "b", "drain"),
    ),
    (
        "drain_ignores_hold_down",
        "YYY",
        "a",
        {"drained": frozenset({"a"}), "flips": (NOW - 1,)},
        {},
        (Kind.MOVE, "b", "drain"),
    ),
    (
        "drained_instance_never_chosen",
        "NYY",
        "a",
        {"drained": frozenset({"b"})},
        {},
        (Kind.MOVE, "c", "failover"),
    ),
    (
        "drained_unknown_does_not_block",
        "YYK",
        "a",
        {"drained": frozenset({"c"})},
        {},
        (Kind.KEEP, None, "sticky"),
    ),
    (
        "drain_with_nowhere_to_go_keeps",
        "YNN",
        "a",
        {"drained": frozenset({"a"})},
        {},
        (Kind.ALARM, None, "all_down"),
    ),
    ("pin_holds_its_instance", "YYY", "c", {"pin": "c"}, {}, (Kind.KEEP, "c", "pinned")),
    (
        "drain_beats_pin",
        "YYY",
        "c",
        {"pin": "c", "drained": frozenset({"c"})},
        {},
        (Kind.MOVE, "a", "drain"),
    ),
    ("pin_is_restored_when_record_differs", "YYY", "a", {"pin": "c"}, {}, (Kind.MOVE, "c", "pin")),
    (
        "pin_beats_failback",
        "YYY",
        "c",
        {"pin": "c"},
        {"failback": "auto"},
        (Kind.KEEP, "c", "pinned"),
    ),
    (
        "pinned_unhealthy_fails_over_by_default",
        "YYN",
        "c",
        {"pin": "c"},
        {},
        (Kind.MOVE, "a", "failover"),
    ),
    (
        "pinned_unhealthy_hold_keeps_and_alarms",
        "YYN",
        "c",
        {"pin": "c"},
        {"pin_unhealthy": "hold"},
        (Kind.ALARM, "c", "pin_unhealthy"),
    ),
    ("absent_record_is_created_for_first_healthy", "NYY", None, {}, {}, (Kind.MOVE, "b", "create")),
    ("absent_record_all_down_alarms", "NNN", None, {}, {}, (Kind.ALARM, None, "all_down")),
]


@pytest.mark.parametrize(
    ("states", "current", "extra", "overrides", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    states: str,
    current: str | None,
    extra: dict[str, Any],
    overrides: dict[str, Any],
    expected: tuple[Kind, str | None, str],
) -> None:
    since, passing = extra.pop("since", NOW - 3600), extra.pop("passing", None)
    decision = decide(PolicyInput(service(**overrides), health(states, since, passing), current,
                                  now=NOW, **extra))  # fmt: skip
    assert (decision.kind, decision.target, decision.rule) == expected, decision.reason
    assert decision.current == current
    assert decision.reason


def test_reasons_read_well() -> None:
    moved = decide(PolicyInput(service(), health("NYY"), "a", now=NOW))
    assert moved.reason.startswith("a unhealthy")
    assert moved.reason.endswith("moving to b")
    held = decide(PolicyInput(service(failback="auto"), health("YYY"), "b", flips=(NOW - 90,),
                              now=NOW))  # fmt: skip
    assert held.reason == "failback to a refused: last flip 1m30s ago, inside hold_down 5m"
    busy = decide(PolicyInput(service(), health("NYY"), "a", flips=(NOW - 9, NOW - 5, NOW - 1),
                              now=NOW))  # fmt: skip
    assert busy.kind is Kind.MOVE and busy.warning is not None
    assert busy.warning.startswith("flip rate high: 3 flips in the last hour")
    waiting = decide(PolicyInput(service(), health("NKY"), "a", now=NOW, settle_until=NOW + 75))
    assert (
        waiting.reason
        == "health not settled yet for b: waiting up to 1m15s more before acting on it"
    )
    down = decide(PolicyInput(service(), health("NNN"), "a", now=NOW))
    assert "fail-static" in down.reason


def test_every_move_targets_a_healthy_instance() -> None:
    """Exhaustive over small inputs: MOVE only ever names a healthy, undrained instance."""
    import itertools

    for states in itertools.product("YNK", repeat=3):
        for current in (None, "a", "b", "c"):
            for pin in (None, "a", "c"):
                for drained in (frozenset(), frozenset({"a"}), frozenset({"b", "c"})):
                    for overrides in ({}, {"failback": "auto"}, {"pin_unhealthy": "hold"}):
                        inp = PolicyInput(service(**overrides), health("".join(states)), current,
                                          pin=pin, drained=drained, now=NOW)  # fmt: skip
                        decision = decide(inp)
                        if decision.kind is Kind.MOVE:
                            assert decision.target is not None
                            assert inp.health[decision.target].state is State.HEALTHY
                            assert decision.target not in drained
