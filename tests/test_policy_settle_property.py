"""No rule keeps the name on a dead instance: the real tracker and policy, a simulated clock.

For random probe results of up to five instances (including standbys that alternate, or only
error, and so never settle), random drains, pins and flip histories: once the settle window
is over, whenever the active is UNHEALTHY and another undrained instance is HEALTHY, the
decision is MOVE — never KEEP, never REFUSE. And a MOVE always names a healthy, undrained one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dnsfailover.config.models import Service
from dnsfailover.health import HealthTracker, State
from dnsfailover.policy import Kind, PolicyInput, decide
from dnsfailover.results import Outcome, ProbeResult

NAMES = ("a", "b", "c", "d", "e")
OUTCOMES = st.sampled_from(list(Outcome))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    count = draw(st.integers(2, 5))
    rounds = draw(st.integers(1, 40))
    return {
        "names": NAMES[:count],
        "rise": draw(st.integers(1, 3)),
        "fall": draw(st.integers(1, 3)),
        "failback": draw(st.sampled_from(["manual", "auto"])),
        "results": draw(
            st.lists(
                st.lists(OUTCOMES, min_size=count, max_size=count),
                min_size=rounds,
                max_size=rounds,
            )
        ),
        "drained": frozenset(draw(st.sets(st.sampled_from(NAMES[:count]), max_size=count - 1))),
        "pin": draw(st.sampled_from([None, *NAMES[:count]])),
        "old_flips": draw(st.integers(0, 8)),
    }


def _service(names: tuple[str, ...], rise: int, fall: int, failback: str) -> Service:
    return Service.model_validate({
        "provider": "dns", "name": "acme.example.com.", "hold_down": "5m",
        "max_flips_per_hour": 2, "failback": failback, "failback_after": "3s",
        "checks": {"interval": "1s", "timeout": "500ms", "rise": rise, "fall": fall},
        "instances": [{"name": n, "target": f"{n}.example.com.",
                       "acme": {"directory": f"https://{n}/dir"}} for n in names],
    })  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_a_dead_active_is_always_left_for_a_healthy_one(scenario: dict[str, object]) -> None:
    names: tuple[str, ...] = scenario["names"]  # type: ignore[assignment]
    service = _service(names, scenario["rise"], scenario["fall"], scenario["failback"])  # type: ignore[arg-type]
    drained: frozenset[str] = scenario["drained"]  # type: ignore[assignment]
    tracker = HealthTracker()
    for name in names:
        tracker.register("acme", name, "acme", required=True)
    start = 1_000_000.0
    settle_until = start + service.checks.settle_window
    flips = [start - 60.0 * (i + 1) for i in range(scenario["old_flips"])]  # type: ignore[call-overload]
    current: str | None = names[0]
    for index, outcomes in enumerate(scenario["results"]):  # type: ignore[arg-type]
        now = start + index * service.checks.interval
        for name, outcome in zip(names, outcomes, strict=True):
            result = ProbeResult("acme", outcome, outcome.value, 0.01, now)
            tracker.observe("acme", name, result, service.checks.rise, service.checks.fall)
        health = tracker.instances("acme")
        inp = PolicyInput(service, health, current, scenario["pin"], drained,  # type: ignore[arg-type]
                          tuple(flips), now + 0.4, settle_until)  # fmt: skip
        decision = decide(inp)
        if decision.kind is Kind.MOVE:
            assert decision.target is not None
            assert health[decision.target].state is State.HEALTHY
            assert decision.target not in drained
        dead_active = current is not None and health[current].state is State.UNHEALTHY
        rescue = [n for n in names if n != current and n not in drained
                  and health[n].state is State.HEALTHY]  # fmt: skip
        if inp.now >= settle_until and dead_active and rescue:
            assert decision.kind is Kind.MOVE, (decision, {n: h.reason for n, h in health.items()})
        if decision.kind is Kind.MOVE:
            current = decision.target
            flips.append(inp.now)
