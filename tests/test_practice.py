"""Practice runs' pure rules (controller/practice.py, config/windows.py): windows and blocked
dates in UTC, the schedule, the default target, the run's saved form. Times are POSIX seconds;
2026-12-07 is a Monday."""

from __future__ import annotations

import datetime
from types import MappingProxyType

import pytest

from dnsfailover.config.models import PracticeSettings, Service
from dnsfailover.config.windows import parse_window
from dnsfailover.controller.practice import (
    RETRY_SCHEDULE,
    CommandResult,
    GateInput,
    Outcome,
    Run,
    default_target,
    due,
    window_refusal,
)
from dnsfailover.health import InstanceHealth, State


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


MONDAY_11 = at("2026-12-07T11:00:00")


@pytest.mark.parametrize(
    ("window", "when", "inside"),
    [
        ("Mon:10:00-Mon:12:00", "2026-12-07T10:00:00", True),  # start included
        ("Mon:10:00-Mon:12:00", "2026-12-07T11:59:59", True),
        ("Mon:10:00-Mon:12:00", "2026-12-07T12:00:00", False),  # end excluded
        ("Mon:10:00-Mon:12:00", "2026-12-14T11:00:00", True),  # every week
        ("Mon:10:00-Mon:12:00", "2026-12-08T11:00:00", False),
        ("Sun:23:00-Mon:01:00", "2026-12-06T23:30:00", True),  # wraps over the week's end
        ("Sun:23:00-Mon:01:00", "2026-12-07T00:59:00", True),
        ("Sun:23:00-Mon:01:00", "2026-12-07T01:00:00", False),
        ("Fri:18:00-Mon:06:00", "2026-12-05T12:00:00", True),  # a weekend
    ],
)
def test_windows_are_utc_weekly_start_included_end_excluded(
    window: str, when: str, inside: bool
) -> None:
    assert parse_window(window).contains(at(when)) is inside


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Mon:10:00", "not a window"),
        ("Xyz:10:00-Mon:12:00", "'Xyz' is not a day"),
        ("Mon:24:00-Mon:12:00", "not a time of day"),
        ("Mon:10:00-Mon:10:00", "must not be empty"),
    ],
)
def test_a_bad_window_says_why(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_window(text)


def settings(**fields: object) -> PracticeSettings:
    return PracticeSettings.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({}, None),
        ({"allowed_windows": ["Mon:10:00-Mon:12:00"]}, None),
        ({"allowed_windows": ["Tue:10:00-Tue:12:00"]}, "outside the allowed windows"),
        ({"blocked_windows": ["Mon:10:30-Mon:11:30"]}, "inside the blocked window"),
        ({"blocked_dates": ["2026-12-07"]}, "2026-12-07 is a blocked date"),
        (
            {"allowed_windows": ["Mon:10:00-Mon:12:00"], "blocked_dates": ["2026-12-07"]},
            "blocked date",
        ),
    ],
)
def test_window_refusal(fields: dict[str, object], refused: str | None) -> None:
    found = window_refusal(settings(**fields), MONDAY_11)
    assert (found is None) if refused is None else (refused in (found or ""))


@pytest.mark.parametrize(
    ("last_started", "last_try", "now", "expected"),
    [
        (None, None, MONDAY_11, True),  # never ran: due in the window
        (MONDAY_11 - 7 * 86400, None, MONDAY_11, True),  # a week ago
        (MONDAY_11 - 7 * 86400 + 1, None, MONDAY_11, False),  # one second short
        (None, MONDAY_11 - RETRY_SCHEDULE + 1, MONDAY_11, False),  # refused just now
        (None, MONDAY_11 - RETRY_SCHEDULE, MONDAY_11, True),
        (None, None, at("2026-12-07T12:00:00"), False),  # the window closed
    ],
)
def test_a_scheduled_run_is_due_every_period_inside_its_window(
    last_started: float | None, last_try: float | None, now: float, expected: bool
) -> None:
    practice = settings(every="7d", allowed_windows=["Mon:10:00-Mon:12:00"])
    assert due(practice, last_started, last_try, now) is expected


def test_no_schedule_without_every() -> None:
    assert not due(settings(), None, None, MONDAY_11)


def test_every_must_be_longer_than_the_run_and_windows_are_one_kind() -> None:
    with pytest.raises(ValueError, match="every must be longer than duration"):
        settings(every="10m", duration="30m")
    with pytest.raises(ValueError, match="at most 7d"):
        settings(duration="8d")
    with pytest.raises(ValueError, match="not both"):
        settings(allowed_windows=["Mon:10:00-Mon:12:00"], blocked_windows=["Tue:10:00-Tue:12:00"])


def _service() -> Service:
    return Service.model_validate({
        "provider": "dns", "name": "acme.example.test.",
        "instances": [{"name": n, "target": f"{n}.example.test.",
                       "acme": {"directory": f"https://{n}.example.test/d"}} for n in "abc"],
    })  # fmt: skip


@pytest.mark.parametrize(
    ("active", "states", "drained", "expected"),
    [
        ("a", {"a": "healthy", "b": "healthy", "c": "healthy"}, (), "b"),
        ("b", {"a": "healthy", "b": "healthy", "c": "healthy"}, (), "c"),
        ("c", {"a": "healthy", "b": "healthy", "c": "healthy"}, (), "a"),  # wraps
        ("a", {"a": "healthy", "b": "unhealthy", "c": "healthy"}, (), "c"),
        ("a", {"a": "healthy", "b": "healthy", "c": "healthy"}, ("b",), "c"),
        ("a", {"a": "healthy", "b": "unknown", "c": "unhealthy"}, (), None),
    ],
)
def test_the_default_target_is_the_next_healthy_instance(
    active: str, states: dict[str, str], drained: tuple[str, ...], expected: str | None
) -> None:
    health = {n: InstanceHealth(n, State(s), 0.0, MappingProxyType({})) for n, s in states.items()}
    gate = GateInput(_service(), health, active, None, drained=frozenset(drained))
    assert default_target(gate) == expected


def test_a_run_survives_its_saved_form_and_a_failed_check_fails_it() -> None:
    run = Run("r1", "b", "drill", 1800.0, 10.0, origin="a").mark("go.decided", 11.0)
    failed = CommandResult("outcome_command", "after_move", False, 1, ("boom",), 0.5)
    run = run.checked((failed,))
    seen = {"a": InstanceHealth("a", State.HEALTHY, 0.0, MappingProxyType({}))}
    run = run.saw("go.decided", seen)
    assert Run.from_json(run.to_json()) == run
    assert run.to_json()["health"] == [
        {"step": "go.decided", "instances": {"a": {"state": "healthy", "reason": seen["a"].reason}}}
    ]
    ended = run.end(Outcome.SUCCEEDED, "back on a", 20.0)
    assert ended.outcome is Outcome.FAILED
    assert ended.why == "outcome_command failed (exit 1) after_move: boom"


def test_the_run_store_keeps_the_last_reports_and_the_run_on(tmp_path: object) -> None:
    from pathlib import Path

    from dnsfailover.controller import runs as runs_module
    from dnsfailover.controller.runs import RunStore

    store = RunStore(Path(str(tmp_path)))
    on = Run("on", "b", "drill", 60.0, 1.0)
    store.save("acme", on)
    assert store.current("acme") == on
    for n in range(runs_module.KEPT + 3):
        store.save("acme", Run(f"r{n}", "b", "x", 60.0, float(n)).end(Outcome.REFUSED, "no", 2.0))
    assert len(list(store.reports.glob("*.json"))) == runs_module.KEPT
    assert store.current("acme") == on  # a refused run does not remove the one on
    store.save("acme", on.end(Outcome.SUCCEEDED, "back", 3.0))
    assert store.current("acme") is None
    last = store.last_report("acme", succeeded=True)
    assert last is not None and last["id"] == "on"
