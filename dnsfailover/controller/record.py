"""The per-service record's values: the steps it asks for (`Do`), the events it is fed, the
actions it returns, its rules and the record itself (machine.py has the transitions).
Imports the report and practice-run values only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dnsfailover.controller.practice import Run
from dnsfailover.controller.report import Intent, Report


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
