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

An operator's intent is never retried blindly after a conflict or a hard error (the pin decides
from there); after a transient error it is, like any other. `give_up_after` bounds the retries
of the one-shot commands (the daemon retries for ever, backing off).
Imports the report values only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.policy import Kind


class Do(enum.Enum):
    FENCE = "fence"  # move the service's fence to our token (a new leader's first write)
    PREPARE = "prepare"  # read the record, decide, plan
    WRITE = "write"  # compare-and-swap (fenced when coordinated), then confirm
    CONFIRM = "confirm"  # check an applied change again until every authority serves it
    VERIFY = "verify"  # the flip as a client sees it
    JOURNAL = "journal"  # audit, metrics, notification, the shared history


class Entry(enum.Enum):
    """What the journal records for a JOURNAL action."""

    DECISION = "decision"
    CONFIRMATION = "confirmation"
    VERIFICATION = "verification"
    FENCE = "fence"


@dataclass(frozen=True)
class Action:
    do: Do
    report: Report | None = None  # WRITE, CONFIRM, VERIFY, JOURNAL
    intent: Intent | None = None  # PREPARE
    token: int | None = None  # FENCE
    entry: Entry | None = None  # JOURNAL


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

    @property
    def idle(self) -> bool:
        return self.busy is None

    @property
    def gave_up(self) -> bool:
        return self.retry.at is None and self.retry.tries > 0


Step = tuple[ServiceRecord, list[Action]]


def step(record: ServiceRecord, event: Event, now: float, rules: Rules) -> Step:
    if isinstance(event, Wake):
        return _start(record, event.intent, rules)
    if isinstance(event, Tick):
        return _tick(record, now, rules)
    if isinstance(event, Lead):
        return replace(record, token=event.token, fence=None), []
    if event.do is Do.PREPARE:
        return _prepared(record, event.report, now, rules)
    if event.do is Do.WRITE:
        return _written(record, event.report, now, rules)
    if event.do is Do.CONFIRM:
        return _confirmed(record, event.report, now, rules)
    if event.do is Do.FENCE:
        return _fenced(record, event.report, now, rules)
    return replace(record, verifying=False), [_journal(event.report, Entry.VERIFICATION)]


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
    if not record.idle:
        return record, []
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
    if report.flipped and rules.verify and not record.verifying:
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
        if report.flipped and rules.verify and not record.verifying:
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
