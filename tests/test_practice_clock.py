"""Practice runs through the whole change path, on a simulated clock (as
tests/test_changes_clock.py): the record's rules (machine.py), the pipeline's steps and gates,
the journal, a real state directory and a real zone file. Every rule about a run's time — its
end to the second, a return at once after a failed check, a restart mid-run — is proven here;
the end-to-end test proves the wiring once against BIND.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dnsfailover.config.models import PracticeCommand
from dnsfailover.controller.changes import Changes, Context
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.machine import Rules, ServiceRecord, Wake, step
from dnsfailover.controller.operator import LocalOverrides, Operator
from dnsfailover.controller.pipeline import Pipeline
from dnsfailover.controller.practice import Ask, CommandResult, Practice
from dnsfailover.controller.report import Intent, Origin
from dnsfailover.controller.runs import RunStore
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from tests.test_changes_clock import START, Clock, Harness, Zone, config

HOUR = 3600.0


class Drill(Harness):
    commands: dict[str, bool]
    ran: list[tuple[str, str]]

    def ask(self, to: str | None = "b", duration: float = 1800.0, run: str = "r1",
            ignore_window: bool = False, ask: Ask = Ask.START) -> None:  # fmt: skip
        practice = Practice(run, ask, duration, ignore_window)
        self.changes.feed("acme", Wake(Intent(Origin.PRACTICE, to, "drill", practice=practice)))

    def report(self, run: str = "r1") -> dict[str, Any]:
        found = RunStore(self.store.directory).report(run)
        assert found is not None
        return found

    def practice_events(self) -> list[tuple[str, str]]:
        entries, _ = self.store.read_audit()
        return [
            (e["event"], e["outcome"])
            for e in entries
            if e["event"].startswith("practice_") and e["event"] != "practice_return"
        ]


@pytest.fixture
def make(tmp_path: Path) -> Any:
    def build(**service: Any) -> Drill:
        service.setdefault("practice", {})
        settings = config(tmp_path, **service)
        zone = Zone("dns", settings.providers["dns"])  # type: ignore[arg-type]
        runtime = Runtime(settings, {"dns": zone}, [])
        clock = Clock()
        store = StateStore(settings.state_dir)
        harness: Drill
        context = Context(
            runtime=lambda: runtime,
            health=lambda key: harness.health(key),
            settle_until=lambda key: harness.settle_until,
        )
        pipeline = Pipeline(store, clock)
        changes = Changes(pipeline, Journal(store), lambda key: Rules(first_backoff=1.0,
                          verify=False), context, clock=clock)  # fmt: skip
        harness = Drill(clock, zone, store, runtime, changes)
        harness.commands, harness.ran = {}, []

        def run_command(name: str, command: PracticeCommand, when: str,
                        variables: Mapping[str, str]) -> CommandResult:  # fmt: skip
            harness.ran.append((name, when))
            passed = harness.commands.get(f"{name}:{when}", True)
            lines = ("issued",) if passed else ("lego: urn:ietf:params:acme:error:malformed",)
            return CommandResult(name, when, passed, 0 if passed else 1, lines, 0.1)

        pipeline.run_command = run_command
        harness.set(a="up", b="up", c="up")
        return harness

    return build


def test_a_run_moves_the_name_and_returns_it_at_its_end_to_the_second(make: Any) -> None:
    h = make()
    h.ask(duration=600.0)
    assert h.served() == "b"
    h.tick(after=599.0)
    assert h.served() == "b"
    h.tick(after=1.0)
    assert h.served() == "a"
    assert h.practice_events() == [("practice_started", "PENDING"),
                                   ("practice_ended", "SUCCEEDED")]  # fmt: skip
    report = h.report()
    steps = [t["step"] for t in report["timeline"]]
    assert steps == ["go.decided", "go.written", "go.served",
                     "back.decided", "back.written", "back.served"]  # fmt: skip
    assert report["origin"] == "a" and report["target"] == "b"
    assert [e for e, _ in h.events() if e in ("practice", "practice_return")] == [
        "practice", "practice_return"]  # fmt: skip
    assert h.changes.record("acme").run is None
    assert not (h.store.directory / "practice" / "acme.json").exists()


def test_a_runs_two_moves_count_neither_for_hold_down_nor_for_the_flip_limit(make: Any) -> None:
    h = make(hold_down="1h", max_flips_per_hour=1)
    h.ask(duration=60.0)
    h.tick(after=60.0)
    assert h.served() == "a" and h.store.load().flip_times("acme") == ()
    h.ask(run="r2", duration=60.0)  # right after: hold-down does not refuse it
    assert h.served() == "b"


def test_the_default_target_is_the_next_healthy_instance_in_preference_order(make: Any) -> None:
    h = make()
    h.set(b="down")
    h.ask(to=None)
    assert h.served() == "c"


@pytest.mark.parametrize(
    ("case", "gate"),
    [
        ("target_unhealthy", "health: target b is unhealthy"),
        ("active_unhealthy", "health: active a is unhealthy"),
        ("target_unknown", "health: target b is unknown"),
        ("inside_hold_down", "hold_down: last flip 1m ago, inside hold_down 5m"),
        ("pinned", "pin: pinned to a"),
        ("drained_target", "drain: b is drained"),
        ("already_there", "target: the name is already on a"),
        ("blocked_date", "window: 1970-01-12 is a blocked date"),
        ("outside_allowed_window", "window: outside the allowed windows (Tue:10:00-Tue:12:00)"),
        ("inside_blocked_window", "window: inside the blocked window Mon:13:00-Mon:14:00"),
        ("blocking_command_fails", "blocking_command: blocking_command failed (exit 1)"),
    ],
)
def test_each_gate_refuses_a_run_names_itself_and_changes_nothing(
    make: Any, case: str, gate: str
) -> None:
    # The simulated clock starts on Monday 1970-01-12 13:46:40 UTC.
    practice: dict[str, Any] = {
        "blocked_date": {"blocked_dates": ["1970-01-12"]},
        "outside_allowed_window": {"allowed_windows": ["Tue:10:00-Tue:12:00"]},
        "inside_blocked_window": {"blocked_windows": ["Mon:13:00-Mon:14:00"]},
        "blocking_command_fails": {"blocking_command": {"argv": ["check"]}},
    }.get(case, {})
    h = make(practice=practice)
    to = "b"
    if case == "target_unhealthy":
        h.set(b="down")
    elif case == "active_unhealthy":
        h.set(a="down", b="up")
        h.zone.failing_reads = 0
    elif case == "target_unknown":
        h.set(b="unknown")
    elif case == "inside_hold_down":
        h.set(a="down")
        h.wake()  # a real failover to b
        h.set(a="up")
        h.clock.advance(60.0)
        to = "a"
    elif case == "pinned":
        Operator(LocalOverrides(h.store), Journal(h.store)).pin("acme", "a", "kept")
    elif case == "drained_target":
        Operator(LocalOverrides(h.store), Journal(h.store)).drain("b", "maintenance")
    elif case == "already_there":
        to = "a"
    elif case == "blocking_command_fails":
        h.commands["blocking_command:before_start"] = False
    before = h.served()
    if case == "active_unhealthy":
        h.changes.records.clear()
        h.ask(to="c")  # a is down: no run during an incident
        gate = "health: active a is unhealthy"
    else:
        h.ask(to=to)
    assert h.served() == before
    report = h.report()
    assert report["outcome"] == "REFUSED"
    assert report["why"].startswith(gate), report["why"]
    entries, _ = h.store.read_audit()
    refused = [e for e in entries if e["event"] == "practice_refused"]
    assert len(refused) == 1 and refused[0]["why"] == report["why"]
    assert not [e for e in entries if e["event"] == "refusal"]  # one entry, the run's


def test_ignore_window_overrides_windows_and_blocked_dates_but_never_health(make: Any) -> None:
    h = make(practice={"blocked_dates": ["1970-01-12"]})
    h.ask(ignore_window=True, duration=60.0)
    assert h.served() == "b"
    h.tick(after=60.0)
    h.set(b="down")
    h.ask(run="r2", ignore_window=True)
    assert h.report("r2")["why"].startswith("health: target b is unhealthy")


def test_a_run_is_refused_while_another_change_is_unconfirmed_or_a_run_is_on(make: Any) -> None:
    h = make()
    h.ask(duration=600.0)
    h.ask(run="r2")
    assert h.report("r2")["why"] == "in_flight: practice run r1 is on"
    saved = RunStore(h.store.directory).current("acme")  # still saved, for a restart
    assert saved is not None and saved.id == "r1"


def test_the_target_failing_mid_run_moves_the_name_away_at_once_interrupted(make: Any) -> None:
    h = make()
    h.ask(duration=600.0)
    h.set(b="down")
    h.wake()
    assert h.served() == "a"  # the policy: a real failure always wins
    report = h.report()
    assert report["outcome"] == "INTERRUPTED" and report["why"].startswith("failover: b unhealthy")
    seen = {h["step"]: h["instances"]["b"]["state"] for h in report["health"]}
    assert seen == {"go.decided": "healthy", "interrupted.failover": "unhealthy"}
    h.tick(after=600.0)
    assert h.served() == "a" and h.changes.record("acme").run is None


def test_the_original_failing_mid_run_keeps_the_name_on_the_target_interrupted(make: Any) -> None:
    h = make()
    h.ask(duration=600.0)
    h.set(a="down")
    h.tick(after=600.0)
    assert h.served() == "b"  # never back to an unhealthy instance
    report = h.report()
    assert report["outcome"] == "INTERRUPTED"
    assert report["why"].startswith("a is not healthy")
    h.tick(after=10.0)
    assert h.served() == "b"


def test_an_outcome_command_failing_after_the_move_returns_at_once_failed(make: Any) -> None:
    h = make(practice={"outcome_command": {"argv": ["smoke"]}})
    h.commands["outcome_command:after_move"] = False
    h.ask(duration=600.0)
    assert h.served() == "a"  # back at once, not after 600 s
    report = h.report()
    assert report["outcome"] == "FAILED"
    assert report["why"] == (
        "outcome_command failed (exit 1) after_move: lego: urn:ietf:params:acme:error:malformed"
    )
    assert h.ran == [("outcome_command", "after_move")]
    assert report["checks"][0]["lines"] == ["lego: urn:ietf:params:acme:error:malformed"]


def test_the_outcome_command_runs_after_the_move_and_before_the_return(make: Any) -> None:
    h = make(practice={"outcome_command": {"argv": ["smoke"]}})
    h.ask(duration=600.0)
    h.commands["outcome_command:before_return"] = False
    h.tick(after=600.0)
    assert h.served() == "a"
    assert h.ran == [("outcome_command", "after_move"), ("outcome_command", "before_return")]
    report = h.report()
    assert report["outcome"] == "FAILED"
    assert [(c["when"], c["passed"]) for c in report["checks"]] == [
        ("after_move", True), ("before_return", False)]  # fmt: skip


def test_the_blocking_command_failing_mid_run_returns_the_name_at_its_next_check(
    make: Any,
) -> None:
    h = make(practice={"blocking_command": {"argv": ["gate"]}})
    h.ask(duration=600.0)
    h.commands["blocking_command:during"] = False
    h.tick(after=59.0)
    assert h.served() == "b" and h.ran == [("blocking_command", "before_start")]
    h.tick(after=1.0)  # CHECK_EVERY: the command runs again, fails, and the name returns
    assert h.served() == "a"
    assert h.ran[-1] == ("blocking_command", "during")
    report = h.report()
    assert report["outcome"] == "FAILED" and report["why"].startswith("blocking_command failed")


def test_a_passing_blocking_command_runs_every_minute_and_the_run_goes_on(make: Any) -> None:
    h = make(practice={"blocking_command": {"argv": ["gate"]}})
    h.ask(duration=600.0)
    for _ in range(9):
        h.tick(after=60.0)
    assert h.served() == "b"
    assert h.ran.count(("blocking_command", "during")) == 9
    h.tick(after=60.0)
    assert h.served() == "a" and h.report()["outcome"] == "SUCCEEDED"


def test_a_cancel_returns_the_name_now_cancelled(make: Any) -> None:
    h = make()
    h.ask(duration=600.0)
    h.tick(after=10.0)
    h.ask(run="r1", ask=Ask.CANCEL)
    assert h.served() == "a"
    assert h.report()["outcome"] == "CANCELLED"


def test_failback_auto_and_pins_do_not_act_during_a_run(make: Any) -> None:
    h = make(failback="auto", failback_after="0s", hold_down="0s")
    h.ask(duration=600.0)
    Operator(LocalOverrides(h.store), Journal(h.store)).pin("acme", "c", "set mid-run")
    h.tick(after=10.0)
    h.tick(after=10.0)
    assert h.served() == "b"
    h.tick(after=580.0)
    assert h.served() == "a"  # the return; then the pin acts
    h.tick(after=1.0)
    assert h.served() == "c"


def test_a_restart_mid_run_finds_the_run_and_ends_it_on_time(make: Any, tmp_path: Path) -> None:
    h = make()
    h.ask(duration=600.0)
    saved = json.loads((h.store.directory / "practice" / "acme.json").read_text())
    assert saved["phase"] == "on" and saved["ends_at"] == START + 600
    # A new daemon: a new record, the same state directory and zone.
    zone = h.zone.path.read_text()
    fresh = make()
    fresh.zone.path.write_text(zone)
    fresh.clock.now = START + 300
    assert [r.id for r in fresh.changes.resume().values()] == ["r1"]
    fresh.tick(after=299.0)
    assert fresh.served() == "b"
    fresh.tick(after=1.0)
    assert fresh.served() == "a"
    assert fresh.report()["outcome"] == "SUCCEEDED"


def test_a_restart_near_the_end_waits_for_the_originals_health_inside_the_settle_window(
    make: Any,
) -> None:
    """A daemon restarted across the run's end knows no health yet: the return waits for the
    original's (inside the settle window), and is not an INTERRUPTED run stranded on b."""
    smoke = {"outcome_command": {"argv": ["smoke"]}}
    h = make(practice=smoke)
    h.ask(duration=600.0)
    zone = h.zone.path.read_text()
    fresh = make(practice=smoke)
    fresh.zone.path.write_text(zone)
    fresh.clock.now = START + 700  # down across the end
    fresh.settle_until = START + 730
    fresh.set(a="unknown")
    assert [r.id for r in fresh.changes.resume().values()] == ["r1"]
    fresh.tick(after=1.0)
    fresh.tick(after=1.0)
    assert fresh.served() == "b" and fresh.changes.record("acme").run is not None
    fresh.set(a="up")
    fresh.tick(after=1.0)
    assert fresh.served() == "a"
    report = fresh.report()
    assert report["outcome"] == "SUCCEEDED", report
    assert fresh.ran == [("outcome_command", "before_return")]  # once, not at every tick


def test_past_the_settle_window_an_undecided_original_keeps_the_name_on_the_target(
    make: Any,
) -> None:
    h = make()
    h.ask(duration=600.0)
    h.settle_until = START + 605
    h.set(a="unknown")
    h.tick(after=600.0)
    assert h.served() == "b" and h.changes.record("acme").run is not None  # waits: 5 s left
    h.tick(after=5.0)
    assert h.served() == "b" and h.changes.record("acme").run is None
    assert h.report()["outcome"] == "INTERRUPTED"
    assert "a is not healthy" in h.report()["why"]


def test_the_run_is_saved_before_its_move_is_written(make: Any) -> None:
    h = make()
    seen: list[str | None] = []
    apply = h.zone.apply

    def spy(change: Any, fence: int | None = None) -> Any:
        path = h.store.directory / "practice" / "acme.json"
        seen.append(json.loads(path.read_text())["phase"] if path.exists() else None)
        return apply(change, fence)

    h.zone.apply = spy  # type: ignore[method-assign]
    h.ask(duration=60.0)
    assert seen == ["starting"]


@pytest.mark.parametrize(
    ("rules", "why"),
    [
        (Rules(first_backoff=1.0, coordinated=True), "leader: this controller does not lead"),
        (Rules(first_backoff=1.0, dry_run=True), "dry_run: this daemon writes nothing"),
    ],
    ids=["a_follower_refuses", "a_dry_run_daemon_refuses"],
)
def test_the_record_refuses_a_run_it_could_not_carry(rules: Rules, why: str) -> None:
    practice = Practice("r1", Ask.START, 60.0)
    intent = Intent(Origin.PRACTICE, "b", "drill", practice=practice)
    record, actions = step(ServiceRecord(), Wake(intent), START, rules)
    assert record.run is None and [a.event for a in actions] == ["practice_refused"]
    assert actions[0].run is not None and actions[0].run.why.startswith(why)


def test_a_start_whose_fence_did_not_move_ends_failed_and_frees_the_record() -> None:
    from dnsfailover.controller.machine import Do, Done, Tick
    from dnsfailover.controller.report import Report

    rules = Rules(first_backoff=1.0, coordinated=True)
    intent = Intent(Origin.PRACTICE, "b", "drill", practice=Practice("r1", Ask.START, 60.0))
    record, actions = step(ServiceRecord(token=7), Wake(intent), START, rules)
    assert [a.do for a in actions] == [Do.FENCE] and record.waiting == intent
    failed = Done(Do.FENCE, Report("acme", error="SERVFAIL"))
    record, _ = step(record, failed, START, rules)
    record, actions = step(record, Tick(), START + 1, rules)  # the fence again, for the policy
    assert [a.do for a in actions] == [Do.FENCE] and record.run is not None
    record, _ = step(record, failed, START + 1, rules)
    record, actions = step(record, Tick(), START + 3, rules)
    assert record.run is None
    ended = [a.run for a in actions if a.event == "practice_ended"]
    assert ended and ended[0] is not None and ended[0].outcome.value == "FAILED"
