"""Rise/fall hysteresis as a decision table: each case is a rule and a sequence of outcomes;
the inconclusive rule at its edges on a simulated clock, and a property over random results."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnsfailover.health import CheckHealth, HealthTracker, InstanceHealth, State, step
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


# ------------------------------------------------------------ health cannot freeze (issue 21)
# Defaults: interval 10s, timeout 3s, rise 3, fall 2: the bound is the settle window, 43s.
BOUND = 43.0


def _watched(bound: float = BOUND, now: float | None = 0.0) -> HealthTracker:
    tracker = HealthTracker()
    tracker.register("svc", "a", "acme", True, inconclusive_after=bound, now=now)
    return tracker


def _feed(tracker: HealthTracker, outcomes: list[tuple[float, Outcome]]) -> InstanceHealth:
    after = None
    for at, outcome in outcomes:
        _, after = tracker.observe("svc", "a", result(outcome, at), 3, 2)
    assert after is not None
    return after


HEALTHY_AT_20 = [(0.0, H), (10.0, H), (20.0, H)]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([(30.0, E), (62.9, E)], Y, id="errors_just_inside_the_bound_keep_health"),
        pytest.param([(30.0, E), (63.0, E)], N, id="errors_for_the_bound_are_unhealthy"),
        pytest.param([(30.0, B), (63.0, B)], N, id="overloaded_for_the_bound_is_unhealthy"),
        pytest.param([(40.0, U), (63.0, E)], N, id="a_failure_then_errors_is_unhealthy"),
        pytest.param([(30.0, E), (62.0, H), (100.0, E)], Y, id="a_pass_restarts_the_clock"),
    ],
)
def test_inconclusive_edges(outcomes: list[tuple[float, Outcome]], expected: State) -> None:
    assert _feed(_watched(), HEALTHY_AT_20 + outcomes).state is expected


def test_inconclusive_reason_says_why_and_since_is_when_the_bound_passed() -> None:
    tracker = _watched()
    rate_limited = ProbeResult("acme", E, "429 rate limited (our probe)", 0.01, 63.0)
    _feed(tracker, HEALTHY_AT_20)
    _, after = tracker.observe("svc", "a", rate_limited, 3, 2)
    assert after.state is State.UNHEALTHY and after.since == 63.0
    assert after.reason == "acme inconclusive for 43s: 429 rate limited (our probe)"
    assert after.passing_since is None


@pytest.mark.parametrize(
    ("now", "expected", "reason"),
    [
        pytest.param(62.9, Y, "healthy: healthy", id="silence_inside_the_bound"),
        pytest.param(63.0, N, "inconclusive for 43s: no result for 43s", id="silence_bound"),
        pytest.param(None, Y, "healthy: healthy", id="silence_counts_only_with_a_clock"),
    ],
)
def test_silence_after_passes(now: float | None, expected: State, reason: str) -> None:
    tracker = _watched()
    _feed(tracker, HEALTHY_AT_20)
    health = tracker.instances("svc", now=now)["a"]
    assert health.state is expected and health.checks["acme"].reason == reason


def test_silence_from_registration_on_a_check_that_never_answers() -> None:
    tracker = _watched(now=100.0)
    assert tracker.instances("svc", now=142.9)["a"].state is State.UNKNOWN
    health = tracker.instances("svc", now=143.0)["a"]
    assert health.state is State.UNHEALTHY
    assert health.reason == "acme inconclusive for 43s: no result"
    assert tracker.snapshot(143.0).instance("svc", "a").state is State.UNHEALTHY


def test_only_inconclusive_from_the_first_result_is_unhealthy_after_the_bound() -> None:
    tracker = _watched(now=None)  # registered without a clock: counted from the first result
    assert _feed(tracker, [(5.0, B), (15.0, E), (47.9, B)]).state is State.UNKNOWN
    assert _feed(tracker, [(48.0, B)]).state is State.UNHEALTHY


def test_recovery_after_inconclusive_needs_rise_passes() -> None:
    tracker = _watched()
    _feed(tracker, [*HEALTHY_AT_20, (63.0, E)])
    assert _feed(tracker, [(70.0, H)]).state is State.UNHEALTHY
    assert _feed(tracker, [(80.0, H)]).state is State.UNHEALTHY
    healthy = _feed(tracker, [(90.0, H)])
    assert healthy.state is State.HEALTHY and healthy.since == 90.0
    assert healthy.passing_since == 70.0


def test_recovery_with_rise_one_is_one_pass() -> None:
    tracker = _watched()
    tracker.observe("svc", "a", result(H, 0.0), 1, 1)
    tracker.observe("svc", "a", result(E, 50.0), 1, 1)
    _, after = tracker.observe("svc", "a", result(H, 60.0), 1, 1)
    assert after.state is State.HEALTHY and after.since == 60.0


def test_failures_keep_their_own_reason() -> None:
    tracker = _watched()
    _feed(tracker, [*HEALTHY_AT_20, (30.0, U), (40.0, U)])
    health = tracker.instances("svc", now=500.0)["a"]
    assert health.state is State.UNHEALTHY and health.since == 40.0
    assert health.reason == "acme unhealthy: unhealthy"


def test_failures_after_inconclusive_keep_the_unhealthy_since() -> None:
    tracker = _watched()
    after = _feed(tracker, [*HEALTHY_AT_20, (63.0, E), (70.0, U), (80.0, U)])
    assert after.state is State.UNHEALTHY and after.since == 63.0
    assert after.reason == "acme unhealthy: unhealthy"


def test_one_shot_tracking_is_never_inconclusive() -> None:
    """The one-shot commands register without a bound: 8,640 overloaded results (a day at
    10s) leave a healthy check healthy, as before."""
    tracker = HealthTracker()
    tracker.register("svc", "a", "acme", required=True)
    _feed(tracker, HEALTHY_AT_20)
    after = _feed(tracker, [(30.0 + 10 * i, B) for i in range(8640)])
    assert after.state is State.HEALTHY
    assert tracker.snapshot(10**6).instance("svc", "a").state is State.HEALTHY


def test_observe_reports_the_change_once() -> None:
    tracker = _watched()
    _feed(tracker, HEALTHY_AT_20)
    before, after = tracker.observe("svc", "a", result(E, 50.0), 3, 2)
    assert (before.state, after.state) == (State.HEALTHY, State.HEALTHY)
    before, after = tracker.observe("svc", "a", result(E, 63.0), 3, 2)
    assert (before.state, after.state) == (State.HEALTHY, State.UNHEALTHY)
    before, after = tracker.observe("svc", "a", result(E, 73.0), 3, 2)
    assert (before.state, after.state) == (State.UNHEALTHY, State.UNHEALTHY)


def test_advance_reports_silence_once_and_observe_carries_on_from_it() -> None:
    tracker = _watched()
    _feed(tracker, HEALTHY_AT_20)
    assert tracker.advance(62.0) == []
    [(service, before, after)] = tracker.advance(63.0)
    assert service == "svc" and before.state is State.HEALTHY
    assert after.state is State.UNHEALTHY and after.since == 63.0
    assert tracker.advance(70.0) == []
    before, after = tracker.observe("svc", "a", result(E, 71.0), 3, 2)
    assert before.state is after.state is State.UNHEALTHY  # no second report
    assert tracker.instances("svc")["a"].state is State.UNHEALTHY  # as last judged


def test_an_informational_check_that_is_inconclusive_decides_nothing() -> None:
    tracker = _watched()
    tracker.register("svc", "a", "crl", False, inconclusive_after=BOUND, now=0.0)
    _feed(tracker, HEALTHY_AT_20)
    health = tracker.instances("svc", now=30.0)["a"]
    assert health.state is State.HEALTHY
    assert health.checks["crl"].state is State.UNKNOWN
    health = tracker.instances("svc", now=50.0)["a"]
    assert health.state is State.HEALTHY
    assert health.checks["crl"].state is State.UNHEALTHY


def test_reregistering_keeps_the_clock_and_takes_the_new_bound() -> None:
    tracker = _watched(now=0.0)
    tracker.register("svc", "a", "acme", True, inconclusive_after=100.0, now=50.0)
    assert tracker.instances("svc", now=99.0)["a"].state is State.UNKNOWN
    assert tracker.instances("svc", now=100.0)["a"].state is State.UNHEALTHY


# ------------------------------------------------------------ the property


@st.composite
def _histories(draw: st.DrawFn) -> tuple[int, int, float, list[tuple[float, Outcome | None]]]:
    rise, fall = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    bound = draw(st.floats(5.0, 120.0))
    kinds = st.sampled_from([H, U, B, E, None])  # None: silence (no result at all)
    events = draw(st.lists(st.tuples(st.floats(0.0, 40.0), kinds), max_size=60))
    return rise, fall, bound, events


@settings(max_examples=400, deadline=None)
@given(_histories(), st.floats(0.0, 80.0))
def test_never_healthy_without_a_pass_within_the_bound(
    history: tuple[int, int, float, list[tuple[float, Outcome | None]]], lookahead: float
) -> None:
    """Whatever the results (passes, failures, overloaded, errors, silence), an instance
    judged HEALTHY at T had a passing result in (T - bound, T]: it never stays HEALTHY on
    an instance nobody can confirm. And once the bound has passed since it was registered,
    it is never UNKNOWN: undecided is a verdict too (unsettled, inconclusive)."""
    rise, fall, bound, events = history
    tracker = _watched(bound=bound, now=0.0)
    passes: list[float] = []
    now = 0.0

    def confirmed(at: float) -> bool:
        return any(p <= at and at - p < bound for p in passes)  # as the tracker counts

    for gap, outcome in events:
        now += gap
        if outcome is not None:
            _, after = tracker.observe("svc", "a", result(outcome, now), rise, fall)
            passes += [now] if outcome is H else []
            assert after.state is not State.HEALTHY or confirmed(now)
        for at in (now, now + lookahead):
            for health in (
                tracker.instances("svc", now=at)["a"],
                tracker.snapshot(at).instance("svc", "a"),
            ):
                assert health.state is not State.HEALTHY or confirmed(at), health.reason
                assert at < bound or health.state is not State.UNKNOWN, health.reason
        for _, _, after in tracker.advance(now):
            assert after.state is not State.HEALTHY or confirmed(now)


def test_a_check_still_undecided_after_the_bound_is_unhealthy_as_unsettled() -> None:
    tracker = _watched(now=0.0)
    flapping = [(10.0 * i, H if i % 2 else U) for i in range(5)]  # U H U H U, 0..40s
    assert _feed(tracker, flapping).state is State.UNKNOWN
    assert tracker.instances("svc", now=42.9)["a"].state is State.UNKNOWN
    health = tracker.instances("svc", now=43.0)["a"]
    assert health.state is State.UNHEALTHY and health.since == 43.0
    assert health.reason.startswith("acme unsettled for 40s: 3 of the last 5 probes failed")
    assert health.unsettled_for == 40.0
    for at in (50.0, 60.0):
        assert _feed(tracker, [(at, H)]).state is State.UNHEALTHY
    assert _feed(tracker, [(70.0, H)]).state is State.HEALTHY  # rise passes in a row


def test_an_instance_unhealthy_for_failures_is_not_called_unsettled() -> None:
    tracker = _watched(now=0.0)
    tracker.register("svc", "a", "ocsp", True, inconclusive_after=BOUND, now=0.0)
    _feed(tracker, [(0.0, U), (10.0, U)])  # acme falls; ocsp has said nothing yet
    tracker.observe("svc", "a", result(H, 11.0, "ocsp"), 3, 2)
    health = tracker.instances("svc", now=20.0)["a"]
    assert health.state is State.UNHEALTHY and health.unsettled_for is None


def test_a_pass_after_mere_silence_carries_on() -> None:
    """Silence since a pass (our side stalled, say) is UNHEALTHY while it lasts; the next pass
    carries on, so a stall of ours never needs rise passes of every instance to undo."""
    tracker = _watched()
    _feed(tracker, HEALTHY_AT_20)
    assert tracker.instances("svc", now=100.0)["a"].state is State.UNHEALTHY
    after = _feed(tracker, [(100.0, H)])
    assert after.state is State.HEALTHY and after.since == 20.0
