"""A practice run's transitions inside the service's record (practice.py has the run's value,
its gates and schedule; machine.py calls these from `step`). Pure, like the machine: the run's
two moves are intents the machine starts (`start`, its own `_start`, passed in), so a run
takes the one path and never a second one.

| event | the run is | actions, and the run after |
|---|---|---|
| Wake(practice start) | none on; idle, confirmed, not backing off | PREPARE (the gates decide) |
| Wake(practice start) | one on, or a change busy/unconfirmed/retried | JOURNAL refused |
| Done(PREPARE) | starting: a move to write | JOURNAL started (saved), then WRITE |
| Done(PREPARE) | starting: a gate refused, or an error | JOURNAL refused / ended FAILED |
| Done(WRITE/CONFIRM/VERIFY) | starting or returning | its timeline marked; on after the move |
| Done(VERIFY) | the outcome command or the client check failed | return at once, FAILED |
| Done(WRITE) of the policy | on: the name left the target | ended INTERRUPTED (failure wins) |
| Tick | on, its end (or a cancel, or a failure) due, idle | PREPARE(return) |
| Tick | starting, its intent lost with a fence that did not move | ended FAILED |
| Done(PREPARE) of the return | back undecided, inside the settle window | again next tick |
| Done(PREPARE) of the return | back is not healthy: the name stays | ended INTERRUPTED |
| Done(VERIFY/WRITE) of the return | served (and verified) | ended SUCCEEDED (or CANCELLED) |
| Wake(practice cancel) | on | returns at the next step |
| Tick | on, its next check due | CHECK (the blocking command, beside any step) |
| Done(CHECK) | on: the blocking command failed | return at once, FAILED |

Imports the record's values, the run's and the report's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from dnsfailover.controller.practice import CHECK_EVERY, Ask, Outcome, Phase, Practice, Run
from dnsfailover.controller.record import (
    Action,
    Backoff,
    Do,
    Done,
    Entry,
    Rules,
    ServiceRecord,
    Step,
)
from dnsfailover.controller.report import Intent, Origin, Report

Start = Callable[[ServiceRecord, Intent, Rules], Step]


def _news(run: Run, event: str | None = None) -> Action:
    return Action(Do.JOURNAL, entry=Entry.PRACTICE, run=run, event=event)


def asked(record: ServiceRecord, intent: Intent, now: float, rules: Rules, start: Start) -> Step:
    """A practice intent: start a run (the record's own gates first), or cancel one."""
    practice = intent.practice
    assert practice is not None
    run = record.run
    if practice.ask is Ask.CANCEL:
        if run is None or run.cancel or practice.run not in (run.id, "*"):
            return record, []
        run = replace(run, cancel=True, why="cancelled by the operator")
        record = replace(record, run=run)
        if record.idle and return_due(record, now):
            record, actions = back(record, rules, start)
            return record, [_news(run), *actions]
        return record, [_news(run)]
    asked = Run(practice.run, intent.to, intent.reason, practice.duration, now,
                practice.scheduled)  # fmt: skip
    busy = _busy(record, rules)
    if busy is not None:
        return record, [_news(asked.end(Outcome.REFUSED, busy, now), "practice_refused")]
    return start(replace(record, run=asked), intent, rules)


def _busy(record: ServiceRecord, rules: Rules) -> str | None:
    """The record's own gates: nothing in flight, unconfirmed or retried; a leader's."""
    if record.run is not None:
        return f"in_flight: practice run {record.run.id} is on"
    if not record.idle or record.waiting is not None or record.verifying:
        return "in_flight: a change is in flight"
    if record.unconfirmed is not None:
        return "in_flight: a change is not served everywhere yet"
    if record.retry.at is not None:
        return "in_flight: a failed change is being retried"
    if rules.coordinated and record.token is None:
        return "leader: this controller does not lead; the leader runs drills"
    if rules.dry_run:
        return "dry_run: this daemon writes nothing, so a run would move nothing"
    return None


def start_lost(record: ServiceRecord) -> bool:
    run, waiting = record.run, record.waiting
    if run is None or run.phase is not Phase.STARTING:
        return False
    practice = waiting.practice if waiting is not None else None
    return practice is None or practice.run != run.id


def return_due(record: ServiceRecord, now: float) -> bool:
    run = record.run
    if run is None or record.verifying or record.unconfirmed is not None:
        return False
    if run.phase is Phase.RETURNING:
        return record.retry.due(now)  # a failed return is tried again, backing off
    if run.phase is not Phase.ON:
        return False
    over = run.ends_at is not None and now >= run.ends_at
    return over or run.cancel or run.failed is not None


def back(record: ServiceRecord, rules: Rules, start: Start) -> Step:
    run = record.run
    assert run is not None
    timed = not run.cancel and run.failed is None
    practice = Practice(run.id, Ask.RETURN, run.duration, check=timed and run.phase is Phase.ON)
    why = "ends" if timed else ("is cancelled" if run.cancel else f"failed ({run.failed})")
    intent = Intent(Origin.PRACTICE, run.origin, f"practice run {run.id} {why}: back to "
                    f"{run.origin}", practice=practice)  # fmt: skip
    record = replace(record, run=replace(run, phase=Phase.RETURNING), retry=Backoff())
    return start(record, intent, rules)


def follows(after: Step, event: Done, now: float, rules: Rules, start: Start) -> Step:
    """A step's outcome for the run on: its timeline, its phase, its end."""
    record, actions = after
    run, report = record.run, event.report
    assert run is not None
    practice = report.intent.practice
    if practice is None or practice.run != run.id:
        return _policy_moved(record, actions, report, now)
    run = run.checked(tuple(report.checks)) if event.do in (Do.PREPARE, Do.VERIFY) else run
    leg = "go" if practice.ask is Ask.START else "back"
    run = _marked(run, leg, event.do, report, now)
    if practice.ask is Ask.START:
        record, actions = _went(replace(record, run=run), actions, event.do, report, now, rules,
                                start)  # fmt: skip
    else:
        record, actions = _came_back(replace(record, run=run), actions, event.do, report, now)
    # Entries first, then steps: a step carried inline concludes before the next action, and
    # the run's saved state must not be overwritten by an older one.
    return record, sorted(actions, key=lambda action: action.do is not Do.JOURNAL)


def _marked(run: Run, leg: str, done: Do, report: Report, now: float) -> Run:
    if done is Do.PREPARE and report.wants_write:
        return run.mark(f"{leg}.decided", now).saw(f"{leg}.decided", report.health)
    if done is Do.WRITE and report.applied:
        run = run.mark(f"{leg}.written", report.write_acked_at or now)
    if done in (Do.WRITE, Do.CONFIRM) and report.served:
        run = run.mark(f"{leg}.served", now)
    if done is Do.VERIFY and report.verification is not None:
        ok = report.verification.ok
        run = run.mark(f"{leg}.verified" if ok else f"{leg}.verify_failed", now)
        if not ok:
            run = replace(
                run, failed=run.failed or f"client check failed: {report.verification.reason}"
            )
    return run


def _went(
    record: ServiceRecord, actions: list[Action], done: Do, report: Report, now: float,
    rules: Rules, start: Start,
) -> Step:  # fmt: skip
    run = record.run
    assert run is not None
    if done is Do.PREPARE:
        decision = report.decision
        if report.wants_write and decision is not None:
            run = replace(run, origin=decision.current, target=decision.target)
            # Saved (and audited) before the WRITE that follows: recorded before written.
            return replace(record, run=run), [_news(run, "practice_started"), *actions]
        refused = decision is not None and decision.rule == "practice_gate"
        outcome = Outcome.REFUSED if refused else Outcome.FAILED
        why = decision.reason if refused and decision else report.error or "nothing to move"
        actions = [a for a in actions if not (refused and a.report is report)]
        return ended(record, actions, run.end(outcome, why, now), "practice_refused"
                      if refused else "practice_ended")  # fmt: skip
    if done is Do.WRITE and not report.applied:
        why = f"the move could not be made: {report.error}"
        return ended(record, actions, run.end(Outcome.FAILED, why, now))
    if done is Do.WRITE:
        run = replace(run, phase=Phase.ON, ends_at=now + run.duration,
                      next_check=now + CHECK_EVERY)  # fmt: skip
    record = replace(record, run=run)
    if record.idle and return_due(record, now):  # a failed check, a cancel: back at once
        record, more = back(record, rules, start)
        return record, [*actions, _news(run), *more]
    return record, [*actions, _news(run)]


def _came_back(
    record: ServiceRecord, actions: list[Action], done: Do, report: Report, now: float
) -> Step:
    run = record.run
    assert run is not None
    decision = report.decision
    if done is Do.PREPARE and not report.wants_write:
        if report.error:
            return record, [*actions, _news(run)]  # tried again at the next tick
        if decision is not None and decision.rule == "practice_wait":
            return record, actions  # the original's health inside the settle window: next tick
        if decision is not None and decision.rule == "practice_stay":
            run = run.saw("back.stayed", report.health)
            return ended(record, actions, run.end(Outcome.INTERRUPTED, decision.reason, now))
        return ended(record, actions, _finished(run, now, "the name was back already"))
    if done is Do.WRITE and not report.applied:
        return record, [*actions, _news(run)]  # the next tick tries again, backing off
    waits = record.verifying or record.unconfirmed is not None
    if done in (Do.WRITE, Do.CONFIRM, Do.VERIFY) and report.applied and not waits:
        return ended(record, actions, _finished(run, now, f"back on {run.origin}"))
    return record, [*actions, _news(run)]


def _finished(run: Run, now: float, why: str) -> Run:
    if run.cancel:
        return run.end(Outcome.CANCELLED, run.why or "cancelled", now)
    return run.end(Outcome.SUCCEEDED, why, now)


def _policy_moved(record: ServiceRecord, actions: list[Action], report: Report, now: float) -> Step:
    """Another change while a run is on: the name leaving its target ends it (a real failure
    always wins)."""
    run = record.run
    assert run is not None
    decision = report.decision
    moved = decision is not None and decision.target not in (None, run.target)
    if run.phase is Phase.ON and report.applied and moved:
        assert decision is not None
        why = f"{decision.rule}: {decision.reason}"
        run = run.saw(f"interrupted.{decision.rule}", report.health)
        return ended(record, actions, run.end(Outcome.INTERRUPTED, why, now))
    return record, actions


def ended(record: ServiceRecord, actions: list[Action], run: Run,
           event: str = "practice_ended") -> Step:  # fmt: skip
    return replace(record, run=None), [*actions, _news(run, event)]


def check_due(record: ServiceRecord, now: float) -> bool:
    run = record.run
    if run is None or run.phase is not Phase.ON or record.checking or run.next_check is None:
        return False
    return now >= run.next_check and run.failed is None and not run.cancel


def check_intent(record: ServiceRecord) -> Intent:
    run = record.run
    assert run is not None
    return Intent(Origin.PRACTICE, run.target, practice=Practice(run.id, Ask.CHECK))


def checking(record: ServiceRecord, now: float) -> ServiceRecord:
    run = record.run
    assert run is not None
    return replace(record, checking=True, run=replace(run, next_check=now + CHECK_EVERY))


def checked(record: ServiceRecord, report: Report, now: float, rules: Rules, start: Start) -> Step:
    """The blocking command ran again: a failure ends the run FAILED, back at once."""
    run, practice = record.run, report.intent.practice
    if run is None or practice is None or practice.run != run.id or run.phase is not Phase.ON:
        return record, []
    run = run.checked(tuple(report.checks))
    record = replace(record, run=run)
    if run.failed is None:
        return record, []
    if record.idle and return_due(record, now):
        record, more = back(record, rules, start)
        return record, [_news(run), *more]
    return record, [_news(run)]  # the step in flight ends first; the next tick returns
