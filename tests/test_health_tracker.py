"""Rise/fall hysteresis as a decision table: each case is a rule and a sequence of outcomes."""

from __future__ import annotations

import pytest

from dnsfailover.health import CheckHealth, HealthTracker, State, step
from dnsfailover.results import Outcome, ProbeResult

H, U, B, E = Outcome.HEALTHY, Outcome.UNHEALTHY, Outcome.OVERLOADED, Outcome.ERROR  # B: busy


def result(outcome: Outcome, at: float = 0.0, check: str = "acme") -> ProbeResult:
    return ProbeResult(check, outcome, outcome.value, 0.01, at)


def run(outcomes: list[Outcome], rise: int = 3, fall: int = 2) -> list[State]:
    health = CheckHealth("acme")
    states = []
    for at, outcome in enumerate(outcomes):
        health = step(health, result(outcome, float(at)), rise, fall)
        states.append(health.state)
    return states


K, Y, N = State.UNKNOWN, State.HEALTHY, State.UNHEALTHY


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([], [], id="starts_unknown"),
        pytest.param([H, H, H], [K, K, Y], id="rise_successes_make_healthy"),
        pytest.param([U, U], [K, N], id="fall_failures_make_unhealthy_from_unknown"),
        pytest.param([H, H, H, U, U], [K, K, Y, Y, N], id="fall_failures_make_unhealthy"),
        pytest.param(
            [H, H, H, U, H, U, H], [K, K, Y, Y, Y, Y, Y], id="isolated_failures_do_not_flip"
        ),
        pytest.param(
            [U, U, H, H, U, H, H, H],
            [K, N, N, N, N, N, N, Y],
            id="recovery_needs_an_unbroken_rise_streak",
        ),
        pytest.param(
            [H, H, B, B, H], [K, K, K, K, Y], id="overloaded_neither_raises_nor_breaks_a_streak"
        ),
        pytest.param([H, H, H, B, B, B, B], [K, K, Y, Y, Y, Y, Y], id="overloaded_never_lowers"),
        pytest.param([U, E, U], [K, K, N], id="probe_errors_are_ignored"),
        pytest.param([H, U] * 10, [K] * 20, id="flapping_input_stays_unknown"),
    ],
)
def test_hysteresis(outcomes: list[Outcome], expected: list[State]) -> None:
    assert run(outcomes) == expected


def test_since_records_the_state_change_not_each_sample() -> None:
    health = CheckHealth("acme")
    for at in (10.0, 11.0, 12.0, 13.0, 14.0):
        health = step(health, result(H, at), rise=2, fall=2)
    assert health.state is State.HEALTHY and health.since == 11.0
    assert health.last is not None and health.last.observed_at == 14.0


def test_passing_since_restarts_at_each_failure_though_the_state_holds() -> None:
    health = CheckHealth("acme")
    for at, outcome in enumerate([H, H, H, U, B, H, H, E, H], start=10):
        health = step(health, result(outcome, float(at)), rise=3, fall=2)
        if at == 13:
            assert health.state is State.HEALTHY and health.passing_since is None
    assert health.state is State.HEALTHY and health.since == 12.0
    assert health.passing_since == 15.0  # busy and error results neither pass nor fail


def test_instance_passing_since_is_the_latest_of_its_required_checks() -> None:
    tracker = _tracker()
    for at in range(3):
        tracker.observe("svc", "a", result(H, at, "acme"), 3, 2)
        tracker.observe("svc", "a", result(H, at + 5, "ocsp"), 3, 2)
    tracker.observe("svc", "a", result(U, 9, "crl"), 3, 2)  # informational: does not count
    assert tracker.snapshot(10).instance("svc", "a").passing_since == 5.0
    tracker.observe("svc", "a", result(U, 10, "acme"), 3, 2)
    assert tracker.snapshot(11).instance("svc", "a").passing_since is None


def test_fall_one_flips_on_a_single_failure() -> None:
    assert run([H, U], rise=1, fall=1) == [Y, N]


def _tracker() -> HealthTracker:
    tracker = HealthTracker()
    tracker.register("svc", "a", "acme", required=True)
    tracker.register("svc", "a", "ocsp", required=True)
    tracker.register("svc", "a", "crl", required=False)
    return tracker


def test_instance_is_healthy_only_when_every_required_check_is() -> None:
    tracker = _tracker()
    for at in range(3):
        tracker.observe("svc", "a", result(H, at, "acme"), 3, 2)
    assert tracker.snapshot(3).instance("svc", "a").state is State.UNKNOWN  # ocsp unknown
    for at in range(3, 6):
        tracker.observe("svc", "a", result(H, at, "ocsp"), 3, 2)
    healthy = tracker.snapshot(6).instance("svc", "a")
    assert healthy.state is State.HEALTHY and healthy.since == 5


def test_one_unhealthy_required_check_makes_the_instance_unhealthy() -> None:
    tracker = _tracker()
    for at in range(3):
        tracker.observe("svc", "a", result(H, at, "acme"), 3, 2)
        tracker.observe("svc", "a", result(H, at, "ocsp"), 3, 2)
    before, after = tracker.observe("svc", "a", result(U, 3, "ocsp"), 3, 2)
    assert (before.state, after.state) == (State.HEALTHY, State.HEALTHY)
    before, after = tracker.observe("svc", "a", result(U, 4, "ocsp"), 3, 2)
    assert (before.state, after.state) == (State.HEALTHY, State.UNHEALTHY)
    assert after.reason == "ocsp unhealthy: unhealthy"


def test_informational_checks_never_decide() -> None:
    tracker = _tracker()
    for at in range(3):
        for check in ("acme", "ocsp"):
            tracker.observe("svc", "a", result(H, at, check), 3, 2)
    for at in range(3, 10):
        tracker.observe("svc", "a", result(U, at, "crl"), 3, 2)
    instance = tracker.snapshot(10).instance("svc", "a")
    assert instance.state is State.HEALTHY
    assert instance.checks["crl"].state is State.UNHEALTHY


def test_snapshots_are_immutable_and_detached() -> None:
    tracker = _tracker()
    snapshot = tracker.snapshot(0)
    for at in range(3):
        tracker.observe("svc", "a", result(U, at, "acme"), 3, 2)
    assert snapshot.instance("svc", "a").state is State.UNKNOWN
    with pytest.raises(TypeError):
        snapshot.services["svc"]["b"] = snapshot.instance("svc", "a")  # type: ignore[index]
