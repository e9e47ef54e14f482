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

A practice run (practice.py) lives in the record (`run`) and takes the same steps:

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
| Done(PREPARE) of the return | back is not healthy: the name stays | ended INTERRUPTED |
| Done(VERIFY/WRITE) of the return | served (and verified) | ended SUCCEEDED (or CANCELLED) |
| Wake(practice cancel) | on | returns at the next step |
| Tick | on, its next check due | CHECK (the blocking command, beside any step) |
| Done(CHECK) | on: the blocking command failed | return at once, FAILED |

An operator's intent is never retried blindly after a conflict or a hard error (the pin decides
from there); after a transient error it is, like any other. `give_up_after` bounds the retries
of the one-shot commands (the daemon retries for ever, backing off).
Imports the report values only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from dnsfailover.controller.practice import CHECK_EVERY, Ask, Outcome, Phase, Practice, Run
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.policy import Kind


class Do(enum.Enum):
    FENCE = "fence"  # move the service's fence to our token (a new leader's first write)
    PREPARE = "prepare"  # read the record, decide, plan
    WRITE = "write"  # compare-and-swap (fenced when coordinated), then confirm
    CONFIRM = "confirm"  # check an applied change again until every authority serves it
    VERIFY = "verify"  # the flip as a client sees it
    CHECK = "check"  # a practice run's blocking command, beside the change (as VERIFY)
    JOURNAL = "journal"  # audit, metrics, notification, the shared history


class Entry(enum.Enum):
    """What the journal records for a JOURNAL action."""

    DECISION = "decision"
    CONFIRMATION = "confirmation"
    VERIFICATION = "verification"
    FENCE = "fence"
    PRACTICE = "practice"  # a practice run's progress (saved); `event` names news


@dataclass(frozen=True)
class Action:
    do: Do
    report: Report | None = None  # WRITE, CONFIRM, VERIFY, JOURNAL
    intent: Intent | None = None  # PREPARE, CHECK
    token: int | None = None  # FENCE
    entry: Entry | None = None  # JOURNAL
    run: Run | None = None  # JOURNAL(PRACTICE)
    event: str | None = None  # JOURNAL(PRACTICE): practice_started, practice_ended, ...


@dataclass(frozen=True)
class Wake:
    """Decide now: health changed, or an operator asked."""

    intent: Intent = field(default_factory=Intent)


@dataclass(frozen=True)
class Tick:
    """Time passed: retries and re-checks that are due."""


@dataclass(frozen=True)
class Done:
    """A step finished on a worker (or inline); its report says how."""

    do: Do
    report: Report


@dataclass(frozen=True)
class Lead:
    """Leadership changed: leading with this fencing token, or following (None)."""

    token: int | None


Event = Wake | Tick | Done | Lead


@dataclass(frozen=True)
class Rules:
    first_backoff: float  # the daemon: its tick
    max_backoff: float = 30.0
    max_conflicts: int = 3  # conflicts in a row re-read at once; then at the pace of ticks
    coordinated: bool = False  # only a leader with its fence writes
    dry_run: bool = False  # no write happens: no fence to move either
    verify: bool = True  # check each flip as a client (`client_verify`)
    give_up_after: int | None = None  # retries after a failure (None: for ever)
    retry_only_transient: bool = False  # the one-shot commands: a hard error is the answer


@dataclass(frozen=True)
class Backoff:
    at: float | None = None  # not before this time (None: not backing off)
    delay: float = 0.0
    tries: int = 0

    def failed(self, now: float, rules: Rules) -> Backoff:
        delay = min(max(rules.first_backoff, self.delay * 2), rules.max_backoff)
        return Backoff(now + delay, delay, self.tries + 1)

    def due(self, now: float) -> bool:
        return self.at is None or now >= self.at


@dataclass(frozen=True)
class ServiceRecord:
    busy: Do | None = None  # the step in flight (at most one; VERIFY runs beside it)
    waiting: Intent | None = None  # asked for while busy (or while the fence moves)
    retry: Backoff = Backoff()  # after a failed step
    retry_intent: Intent | None = None  # what the retry is for (an operator's move stays one)
    unconfirmed: Report | None = None  # applied, not yet served everywhere
    confirm: Backoff = Backoff()
    conflicts: int = 0  # in a row
    verifying: bool = False
    last: Report | None = None  # the last concluded change
    active: str | None = None  # the instance the record points at, as far as we know
    token: int | None = None  # coordinated: leading with this token (None: following)
    fence: int | None = None  # coordinated: the token this service's fence holds (ours)
    run: Run | None = None  # the practice run on now (practice.py)
    checking: bool = False  # its blocking command runs now

    @property
    def idle(self) -> bool:
        return self.busy is None

    @property
    def gave_up(self) -> bool:
        return self.retry.at is None and self.retry.tries > 0


Step = tuple[ServiceRecord, list[Action]]


def step(record: ServiceRecord, event: Event, now: float, rules: Rules) -> Step:
    if isinstance(event, Wake):
        if event.intent.practice is not None:
            return _practice_asked(record, event.intent, now, rules)
        return _start(record, event.intent, rules)
    if isinstance(event, Tick):
        return _tick(record, now, rules)
    if isinstance(event, Lead):
        return replace(record, token=event.token, fence=None), []
    if event.do is Do.PREPARE:
        after = _prepared(record, event.report, now, rules)
    elif event.do is Do.WRITE:
        after = _written(record, event.report, now, rules)
    elif event.do is Do.CONFIRM:
        after = _confirmed(record, event.report, now, rules)
    elif event.do is Do.FENCE:
        return _fenced(record, event.report, now, rules)
    elif event.do is Do.CHECK:
        return _run_checked(replace(record, checking=False), event.report, now, rules)
    else:
        after = replace(record, verifying=False), [_journal(event.report, Entry.VERIFICATION)]
    if record.run is None:
        return after
    record, actions = _run_follows(after, event, now, rules)
    run = record.run
    if run is not None and run.phase is Phase.ON and record.idle and _return_due(record, now):
        record, more = _return(record, rules)  # a failure or a cancel met a step in flight
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
    return replace(waiting, trigger_at=min(triggers) if triggers else None)


def _tick(record: ServiceRecord, now: float, rules: Rules) -> Step:
    if _check_due(record, now) and not _return_due(record, now):
        check = Action(Do.CHECK, intent=_check_intent(record))
        record, actions = _tick(_check(record, now), now, rules)
        return record, [check, *actions]
    if not record.idle:
        return record, []
    if _return_due(record, now):
        return _return(record, rules)
    if _start_lost(record):  # its start waited for a fence that did not move
        assert record.run is not None
        run = record.run.end(Outcome.FAILED, "the move could not be started (fence)", now)
        record, actions = _ended(record, [], run)
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


# ----------------------------------------------------------------------------- practice runs


def _news(run: Run, event: str | None = None) -> Action:
    return Action(Do.JOURNAL, entry=Entry.PRACTICE, run=run, event=event)


def _practice_asked(record: ServiceRecord, intent: Intent, now: float, rules: Rules) -> Step:
    practice = intent.practice
    assert practice is not None
    run = record.run
    if practice.ask is Ask.CANCEL:
        if run is None or run.cancel or practice.run not in (run.id, "*"):
            return record, []
        run = replace(run, cancel=True, why="cancelled by the operator")
        record = replace(record, run=run)
        if record.idle and _return_due(record, now):
            record, actions = _return(record, rules)
            return record, [_news(run), *actions]
        return record, [_news(run)]
    asked = Run(practice.run, intent.to, intent.reason, practice.duration, now,
                practice.scheduled)  # fmt: skip
    busy = _busy(record, rules)
    if busy is not None:
        return record, [_news(asked.end(Outcome.REFUSED, busy, now), "practice_refused")]
    return _start(replace(record, run=asked), intent, rules)


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


def _start_lost(record: ServiceRecord) -> bool:
    run, waiting = record.run, record.waiting
    if run is None or run.phase is not Phase.STARTING:
        return False
    practice = waiting.practice if waiting is not None else None
    return practice is None or practice.run != run.id


def _return_due(record: ServiceRecord, now: float) -> bool:
    run = record.run
    if run is None or record.verifying or record.unconfirmed is not None:
        return False
    if run.phase is Phase.RETURNING:
        return record.retry.due(now)  # a failed return is tried again, backing off
    if run.phase is not Phase.ON:
        return False
    over = run.ends_at is not None and now >= run.ends_at
    return over or run.cancel or run.failed is not None


def _return(record: ServiceRecord, rules: Rules) -> Step:
    run = record.run
    assert run is not None
    timed = not run.cancel and run.failed is None
    practice = Practice(run.id, Ask.RETURN, run.duration, check=timed and run.phase is Phase.ON)
    why = "ends" if timed else ("is cancelled" if run.cancel else f"failed ({run.failed})")
    intent = Intent(Origin.PRACTICE, run.origin, f"practice run {run.id} {why}: back to "
                    f"{run.origin}", practice=practice)  # fmt: skip
    record = replace(record, run=replace(run, phase=Phase.RETURNING), retry=Backoff())
    return _start(record, intent, rules)


def _run_follows(after: Step, event: Done, now: float, rules: Rules) -> Step:
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
        record, actions = _went(replace(record, run=run), actions, event.do, report, now, rules)
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
    rules: Rules,
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
        return _ended(record, actions, run.end(outcome, why, now), "practice_refused"
                      if refused else "practice_ended")  # fmt: skip
    if done is Do.WRITE and not report.applied:
        why = f"the move could not be made: {report.error}"
        return _ended(record, actions, run.end(Outcome.FAILED, why, now))
    if done is Do.WRITE:
        run = replace(run, phase=Phase.ON, ends_at=now + run.duration,
                      next_check=now + CHECK_EVERY)  # fmt: skip
    record = replace(record, run=run)
    if record.idle and _return_due(record, now):  # a failed check, a cancel: back at once
        record, more = _return(record, rules)
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
        if decision is not None and decision.rule == "practice_stay":
            run = run.saw("back.stayed", report.health)
            return _ended(record, actions, run.end(Outcome.INTERRUPTED, decision.reason, now))
        return _ended(record, actions, _finished(run, now, "the name was back already"))
    if done is Do.WRITE and not report.applied:
        return record, [*actions, _news(run)]  # the next tick tries again, backing off
    waits = record.verifying or record.unconfirmed is not None
    if done in (Do.WRITE, Do.CONFIRM, Do.VERIFY) and report.applied and not waits:
        return _ended(record, actions, _finished(run, now, f"back on {run.origin}"))
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
        return _ended(record, actions, run.end(Outcome.INTERRUPTED, why, now))
    return record, actions


def _ended(record: ServiceRecord, actions: list[Action], run: Run,
           event: str = "practice_ended") -> Step:  # fmt: skip
    return replace(record, run=None), [*actions, _news(run, event)]


def _check_due(record: ServiceRecord, now: float) -> bool:
    run = record.run
    if run is None or run.phase is not Phase.ON or record.checking or run.next_check is None:
        return False
    return now >= run.next_check and run.failed is None and not run.cancel


def _check_intent(record: ServiceRecord) -> Intent:
    run = record.run
    assert run is not None
    return Intent(Origin.PRACTICE, run.target, practice=Practice(run.id, Ask.CHECK))


def _check(record: ServiceRecord, now: float) -> ServiceRecord:
    run = record.run
    assert run is not None
    return replace(record, checking=True, run=replace(run, next_check=now + CHECK_EVERY))


def _run_checked(record: ServiceRecord, report: Report, now: float, rules: Rules) -> Step:
    """The blocking command ran again: a failure ends the run FAILED, back at once."""
    run, practice = record.run, report.intent.practice
    if run is None or practice is None or practice.run != run.id or run.phase is not Phase.ON:
        return record, []
    run = run.checked(tuple(report.checks))
    record = replace(record, run=run)
    if run.failed is None:
        return record, []
    if record.idle and _return_due(record, now):
        record, more = _return(record, rules)
        return record, [_news(run), *more]
    return record, [_news(run)]  # the step in flight ends first; the next tick returns
