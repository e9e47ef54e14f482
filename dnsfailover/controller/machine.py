"""One record per service and its rules: what its changes are doing, and what to do next.

Sans-I/O (as h11): `step(record, event, now, rules) -> (record, actions)` is pure. The daemon
feeds it events (a health change or an operator's request, a tick, a step's outcome, a change
of leadership) and carries the actions out on its workers; the one-shot commands carry them
out inline (`changes.py`). Time is a parameter: tests drive the rules on a simulated clock.

| event | the service is | actions, and the record after |
|---|---|---|
| Wake(intent) | idle, alone or leading with its fence | PREPARE(intent) |
| Wake(intent) | leading, its fence not ours yet | FENCE(token); the intent waits |
| Wake(intent) | following (coordinated, not leading) | none |
| Wake(intent) | busy | the intent waits for the step in flight |
| Tick | unconfirmed, its re-check due | CONFIRM(report) |
| Tick | idle, not backing off | PREPARE(policy) (pins, drains, retries) |
| Done(PREPARE) | a change to write | WRITE(report) (an unconfirmed change is superseded) |
| Done(PREPARE) | nothing to write | JOURNAL(decision); back off if it failed |
| Done(WRITE) | applied, served everywhere | JOURNAL(decision), VERIFY if a flip |
| Done(WRITE) | applied, not served everywhere | JOURNAL(decision); unconfirmed, re-checked |
| Done(WRITE) | conflict, ≤ `max_conflicts` in a row | JOURNAL(decision), PREPARE(policy) now |
| Done(WRITE) | conflict, more in a row | JOURNAL(decision); the next tick tries again |
| Done(WRITE) | refused by the fence | JOURNAL(decision); the fence is not ours any more; back off |
| Done(WRITE) | failed | JOURNAL(decision); back off (first, 2×, 4× … at most `max_backoff`) |
| Done(CONFIRM) | served now | JOURNAL(confirmation), VERIFY |
| Done(CONFIRM) | still not served | JOURNAL(confirmation); back off again |
| Done(FENCE) | moved to our token | JOURNAL(fence), PREPARE(the waiting intent) |
| Done(FENCE) | not moved | JOURNAL(fence); back off |
| Lead(token) / Lead(None) | any | leading with `token` (fences to move again) / following |

A practice run (practice.py) lives in the record (`run`); its transitions are practicing.py's,
called from `step`, and its moves are intents started here like any other.

An operator's intent is never retried blindly after a conflict or a hard error (the pin decides
from there); after a transient error it is, like any other. `give_up_after` bounds the retries
of the one-shot commands (the daemon retries for ever, backing off).
Imports the record's values (record.py, re-exported here), a practice run's transitions
(practicing.py) and the report values.
"""

from __future__ import annotations

from dataclasses import replace

from dnsfailover.controller import practicing
from dnsfailover.controller.practice import Outcome, Phase
from dnsfailover.controller.record import (
    Action,
    Backoff,
    Do,
    Done,
    Entry,
    Event,
    Lead,
    Rules,
    ServiceRecord,
    Step,
    Tick,
    Wake,
)
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.policy import Kind

__all__ = [  # the record's values, for the machine's callers
    "Action", "Backoff", "Do", "Done", "Entry", "Event", "Lead", "Rules", "ServiceRecord", "Step",
    "Tick", "Wake", "step",
]  # fmt: skip


def step(record: ServiceRecord, event: Event, now: float, rules: Rules) -> Step:
    if isinstance(event, Wake):
        if event.intent.practice is not None:
            return practicing.asked(record, event.intent, now, rules, _start)
        return _start(record, event.intent, rules)
    if isinstance(event, Tick):
        return _tick(record, now, rules)
    if isinstance(event, Lead):
        # A follower drops its practice run: the leader carries it (etcd's shared document
        # has it, and each follower a copy, to end it on time if it leads next).
        run = record.run if event.token is not None else None
        return replace(record, token=event.token, fence=None, run=run), []
    if event.do is Do.PREPARE:
        after = _prepared(record, event.report, now, rules)
    elif event.do is Do.WRITE:
        after = _written(record, event.report, now, rules)
    elif event.do is Do.CONFIRM:
        after = _confirmed(record, event.report, now, rules)
    elif event.do is Do.FENCE:
        return _fenced(record, event.report, now, rules)
    elif event.do is Do.CHECK:
        return practicing.checked(replace(record, checking=False), event.report, now, rules,
                                 _start)  # fmt: skip
    else:
        after = replace(record, verifying=False), [_journal(event.report, Entry.VERIFICATION)]
    if record.run is None:
        return after
    record, actions = practicing.follows(after, event, now, rules, _start)
    run = record.run
    if (
        run is not None
        and run.phase is Phase.ON
        and record.idle
        and practicing.return_due(record, now)
    ):
        record, more = practicing.back(
            record, rules, _start
        )  # a failure or a cancel met a step in flight
        actions = [*actions, *more]
    return record, actions


def _journal(report: Report, entry: Entry = Entry.DECISION) -> Action:
    return Action(Do.JOURNAL, report=report, entry=entry)


def _start(record: ServiceRecord, intent: Intent, rules: Rules) -> Step:
    if not record.idle:
        return replace(record, waiting=_stronger(record.waiting, intent)), []
    if rules.coordinated:
        if record.token is None:
            return replace(record, waiting=None), []  # following: the leader decides
        if record.fence != record.token and not rules.dry_run:
            fence = Action(Do.FENCE, token=record.token)
            return replace(record, busy=Do.FENCE, waiting=intent), [fence]
    prepare = Action(Do.PREPARE, intent=intent)
    return replace(record, busy=Do.PREPARE, waiting=None), [prepare]


def _stronger(waiting: Intent | None, intent: Intent) -> Intent:
    """An operator's intent is kept over the policy's; the earliest trigger is kept."""
    if waiting is None:
        return intent
    if intent.origin is Origin.OPERATOR:
        return intent
    if waiting.origin is Origin.OPERATOR:
        return waiting
    triggers = [t for t in (waiting.trigger_at, intent.trigger_at) if t is not None]
    # The newest id: a control request waits for the change that starts after it asked.
    return replace(waiting, trigger_at=min(triggers) if triggers else None,
                   id=intent.id or waiting.id)  # fmt: skip


def _tick(record: ServiceRecord, now: float, rules: Rules) -> Step:
    if practicing.check_due(record, now) and not practicing.return_due(record, now):
        check = Action(Do.CHECK, intent=practicing.check_intent(record))
        record, actions = _tick(practicing.checking(record, now), now, rules)
        return record, [check, *actions]
    if not record.idle:
        return record, []
    if practicing.return_due(record, now):
        return practicing.back(record, rules, _start)
    if practicing.start_lost(record):  # its start waited for a fence that did not move
        assert record.run is not None
        run = record.run.end(Outcome.FAILED, "the move could not be started (fence)", now)
        record, actions = practicing.ended(record, [], run)
        more_record, more = _tick(record, now, rules)
        return more_record, [*actions, *more]
    if record.unconfirmed is not None and record.confirm.due(now):
        confirm = Action(Do.CONFIRM, report=record.unconfirmed)
        return replace(record, busy=Do.CONFIRM), [confirm]
    if record.retry.at is None and record.retry.tries > 0:
        return record, []  # gave up (one-shot)
    if not record.retry.due(now):
        return record, []  # backing off after a failure: no retry storm
    return _start(record, record.retry_intent or Intent(), rules)


def _conclude(record: ServiceRecord, report: Report) -> ServiceRecord:
    decision = report.decision
    active = record.active
    if report.applied and decision is not None and decision.kind is Kind.MOVE:
        active = decision.target
    elif decision is not None and not report.drift:
        active = decision.current
    return replace(record, busy=None, last=report, active=active)


def _failed(record: ServiceRecord, report: Report, now: float, rules: Rules) -> ServiceRecord:
    """Back off after a failed step, or give up (one-shot) when the rules say so."""
    retry = record.retry.failed(now, rules)
    hopeless = rules.retry_only_transient and not report.transient
    if hopeless or (rules.give_up_after is not None and retry.tries > rules.give_up_after):
        retry = replace(retry, at=None)
    # A transient error is retried as the same intent; after any other, the policy decides
    # again (an operator's move that cannot be made is not asked again for ever).
    return replace(record, retry=retry, retry_intent=report.intent if report.transient else None)


def _succeeded(record: ServiceRecord) -> ServiceRecord:
    return replace(record, retry=Backoff(), retry_intent=None)


def _then(record: ServiceRecord, actions: list[Action], rules: Rules) -> Step:
    """After a step: start what waited for it."""
    if record.waiting is not None and record.idle:
        record, more = _start(record, record.waiting, rules)
        actions = [*actions, *more]
    return record, actions


def _prepared(record: ServiceRecord, report: Report, now: float, rules: Rules) -> Step:
    report.conflicts = record.conflicts
    if report.wants_write:
        write = Action(Do.WRITE, report=report)
        return replace(record, busy=Do.WRITE, unconfirmed=None), [write]
    record = _conclude(record, report)
    if report.error:
        record = _failed(record, report, now, rules)
    else:  # nothing to write: a row of conflicts ends here too
        record = replace(_succeeded(record), conflicts=0)
    return _then(record, [_journal(report)], rules)


def _written(record: ServiceRecord, report: Report, now: float, rules: Rules) -> Step:
    record = _conclude(record, report)
    actions = [_journal(report)]
    if report.applied and not report.served:
        record = replace(record, unconfirmed=report, confirm=Backoff().failed(now, rules))
    if report.flipped and _verifies(report, rules) and not record.verifying:
        record = replace(record, verifying=True)
        actions.append(Action(Do.VERIFY, report=report))
    if report.conflict:
        conflicts = record.conflicts + 1
        record = replace(record, conflicts=conflicts, retry=Backoff(), retry_intent=None)
        if conflicts <= rules.max_conflicts:  # someone else changed it: re-read, re-decide
            record, more = _start(replace(record, waiting=None), Intent(), rules)
            return record, [*actions, *more]
        return _then(record, actions, rules)
    record = replace(record, conflicts=0)
    if report.refused_by_fence:
        record = replace(record, fence=None)
    record = _failed(record, report, now, rules) if report.error else _succeeded(record)
    return _then(record, actions, rules)


def _confirmed(record: ServiceRecord, report: Report, now: float, rules: Rules) -> Step:
    record = replace(record, busy=None)
    actions = [_journal(report, Entry.CONFIRMATION)]
    if record.unconfirmed is not report:
        return _then(record, actions, rules)  # superseded by a newer change meanwhile
    if report.served:
        record = replace(record, unconfirmed=None, confirm=Backoff())
        if report.flipped and _verifies(report, rules) and not record.verifying:
            record = replace(record, verifying=True)
            actions.append(Action(Do.VERIFY, report=report))
    else:
        record = replace(record, confirm=record.confirm.failed(now, rules))
    return _then(record, actions, rules)


def _fenced(record: ServiceRecord, report: Report, now: float, rules: Rules) -> Step:
    record = replace(record, busy=None)
    actions = [_journal(report, Entry.FENCE)]
    if report.applied and report.fence is not None and report.fence == record.token:
        record = _succeeded(replace(record, fence=report.fence))
        record, more = _start(record, record.waiting or Intent(), rules)
        return record, [*actions, *more]
    record = replace(record, retry=record.retry.failed(now, rules))
    return record, actions


def _verifies(report: Report, rules: Rules) -> bool:
    """A flip is checked as a client (`client_verify`); a practice run's, always (its outcome
    command runs in that step, and its timeline wants the mark)."""
    return rules.verify or report.intent.origin is Origin.PRACTICE
