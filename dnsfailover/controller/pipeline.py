"""The steps of a change, whoever asked for it:

    intent ──▶ prepare ──▶ write ──▶ confirm ──▶ verify ──▶ journal (journal.py)

- `prepare`: settle a leftover flip intent, read the live record, decide (the policy, or the
  operator's move), plan. Dry-run lives here, and only here: a dry-run change is planned and
  never written.
- `write`: record the flip as intended (proving state.json writable before DNS moves), then
  compare-and-swap through the provider, fenced with the leader's token when coordinated; a
  conflict, a fence's refusal or an error is an outcome in the report, never an exception.
- `confirm`: wait until every authoritative server serves the change.
- `verify`: the flip as a client sees it (verify.py); after a practice run's move, the
  operator's outcome command too.

A practice run's intents (practice.py) take the same steps: its start is decided by the gates
(and the blocking command), its return runs the outcome command once more first and moves
back only to a healthy instance; while a run is on, the policy honours its target
(`PolicyInput.practice`, not a pin).
- `move_fence`: a new leader's first write for a service, before its first change.

The daemon runs each step on a worker, the one-shot commands inline; which step comes next is
the per-service record's business (machine.py), never the steps'. Each step fills in the
report and returns it; none raises for anything a DNS server or a CA can do.
Imports config values, the state store, the report values and the layers below (policy, plan,
providers); never the daemon, the machine or the workers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from dnsfailover.config.models import PracticeCommand, Service
from dnsfailover.controller import practice as drills
from dnsfailover.controller.commands import run_command
from dnsfailover.controller.practice import Ask, CommandResult, GateInput
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.controller.state import Flip, SavedState, StateStore
from dnsfailover.controller.verify import ClientVerifier
from dnsfailover.controller.verify import window as verify_window
from dnsfailover.crashpoint import crashpoint
from dnsfailover.errors import ConflictError, DnsFailoverError, FencedError, TransientError
from dnsfailover.health import InstanceHealth, State
from dnsfailover.plan import drift_reason, make_plan, owner_of, record_ttl
from dnsfailover.policy import Decision, Kind, PolicyInput, decide
from dnsfailover.providers import Propagation, Provider, ServerView
from dnsfailover.rrset import RRset

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self, store: StateStore, clock: Callable[[], float] = time.time, dry_run: bool = False
    ) -> None:
        self.store = store
        self.clock = clock
        self.dry_run = dry_run
        self._last_live: dict[str, RRset | None] = {}  # the record at the last good read
        self._writing: set[str] = set()  # services whose write runs now, in this process
        self.run_command = run_command  # a practice run's operator commands (tests replace it)

    # ------------------------------------------------------------------ prepare

    def prepare(
        self,
        key: str,
        service: Service,
        provider: Provider,
        health: Mapping[str, InstanceHealth],
        intent: Intent | None = None,
        settle_until: float = -math.inf,
        preview: bool = False,
        practice: str | None = None,
    ) -> Report:
        """Read, decide, plan. `preview` (`plan`): a dry run that settles nothing. `practice`:
        the target of the practice run on now (the policy honours it)."""
        intent = intent or Intent()
        report = Report(key, intent, health)
        report.dry_run = self.dry_run or preview
        try:
            if not preview and key not in self._writing:
                self.recover(key, service, provider)
            state = self.store.load()
            live = provider.read(service.name, service.type)
        except DnsFailoverError as e:
            report.error = str(e)
            report.transient = isinstance(e, TransientError)
            report.pending = self._pending(key, service, health, settle_until)
            return report
        self._last_live[key] = live
        report.live = live
        owner = owner_of(service, live)
        manual = intent.manual()
        if live is not None and owner is None and manual is None and not service.adopt:
            report.drift = True
            reason = drift_reason(service, live) + ": left alone"
            report.decision = Decision(Kind.KEEP, None, None, "drift", reason)
            return report
        if manual is not None:
            decision = replace(manual, current=owner)
        elif intent.origin is Origin.PRACTICE:
            decision = self._practice(report, service, owner, state, settle_until)
        else:
            decision = self._decide(key, service, health, owner, state, settle_until, practice)
        report.decision = decision
        ttl = record_ttl(service, decision, health, state.flip_times(key), self.clock())
        try:
            report.plan = make_plan(key, service, decision, live, ttl)
        except DnsFailoverError as e:  # an operator's move to no instance of the service
            report.error = str(e)
            return report
        if report.plan.change is not None:
            report.change = report.plan.change.summary()
            if report.dry_run and not preview:
                log.info("dry_run service=%s change=%s", key, report.change)
        return report

    def _decide(
        self,
        key: str,
        service: Service,
        health: Mapping[str, InstanceHealth],
        owner: str | None,
        state: SavedState,
        settle_until: float,
        practice: str | None = None,
    ) -> Decision:
        pin = state.pins.get(key)
        return decide(
            PolicyInput(
                service,
                health,
                owner,
                pin.instance if pin else None,
                frozenset(state.drains),
                state.flip_times(key),
                self.clock(),
                settle_until,
                practice,
            )
        )

    def _practice(
        self,
        report: Report,
        service: Service,
        owner: str | None,
        state: SavedState,
        settle_until: float = -math.inf,
    ) -> Decision:
        """A practice run's start (its gates, then the blocking command) or its return (the
        outcome command, then back only to a healthy instance; one whose health is not decided
        yet inside the settle window — a daemon restarted near the run's end — is waited for,
        `practice_wait`, as the policy waits before it acts)."""
        intent, health = report.intent, report.health
        assert intent.practice is not None
        settings = service.practice
        if intent.practice.ask is Ask.RETURN:
            if intent.practice.check and settings and settings.outcome_command:
                report.checks.append(self._command(report, settings.outcome_command,
                                                   "outcome_command", "before_return"))  # fmt: skip
            origin = intent.to or ""
            healthy = origin in health and health[origin].state is State.HEALTHY
            if owner == origin or (healthy and origin not in state.drains):
                return Decision(Kind.MOVE, owner, origin, "practice_return", intent.reason)
            why = health[origin].reason if origin in health else "no health known"
            undecided = origin not in health or health[origin].state is State.UNKNOWN
            if undecided and self.clock() < settle_until:
                wait = f"{origin} is not decided yet ({why}): the return waits for its health"
                return Decision(Kind.KEEP, owner, None, "practice_wait", wait)
            stays = f"{origin} is not healthy ({why}): the name stays on {owner}"
            return Decision(Kind.KEEP, owner, None, "practice_stay", stays)
        pin = state.pins.get(report.service)
        gate = GateInput(service, health, owner, intent.to, pin.instance if pin else None,
                         frozenset(state.drains), state.flip_times(report.service), self.clock(),
                         intent.practice.ignore_window)  # fmt: skip
        refused = drills.refusal(gate)
        target = intent.to or drills.default_target(gate)
        if refused is None and settings is not None and settings.blocking_command is not None:
            result = self._command(report, settings.blocking_command, "blocking_command",
                                   "before_start", target)  # fmt: skip
            report.checks.append(result)
            refused = None if result.passed else ("blocking_command", result.summary())
        if refused is not None:
            gate_name, reason = refused
            return Decision(Kind.REFUSE, owner, target, "practice_gate", f"{gate_name}: {reason}")
        reason = intent.reason or f"practice run: {owner} → {target}"
        return Decision(Kind.MOVE, owner, target, "practice", reason)

    def _command(
        self, report: Report, command: PracticeCommand, name: str, when: str,
        target: str | None = None,
    ) -> CommandResult:  # fmt: skip
        practice = report.intent.practice
        decision = report.decision
        variables = {
            "service": report.service,
            "run": practice.run if practice else "",
            "to": target or (decision.target if decision and decision.target else "") or "",
        }
        return self.run_command(name, command, when, variables)

    def _pending(
        self,
        key: str,
        service: Service,
        health: Mapping[str, InstanceHealth],
        settle_until: float,
    ) -> str | None:
        """The change this service still wants, judged from the last record we could read."""
        if key not in self._last_live:
            return None
        live = self._last_live[key]
        owner = owner_of(service, live)
        if live is not None and owner is None:
            return None
        try:
            decision = self._decide(key, service, health, owner, self.store.load(), settle_until)
        except DnsFailoverError:
            return None
        plan = make_plan(key, service, decision, live)
        return None if plan.change is None else plan.change.summary()

    def recover(self, key: str, service: Service, provider: Provider) -> None:
        """Settle a flip intent that no write of this process owns (a crash, or a write whose
        outcome was uncertain): the flip happened if the record holds its target."""
        intent = self.store.load().intents.get(key)
        if intent is None:
            return
        owner = owner_of(service, provider.read(service.name, service.type))
        if owner == intent.target:
            self.store.complete_flip(key, intent)
            log.warning("flip_recovered service=%s to=%s: it landed", key, intent.target)
        else:
            self.store.abandon_flip(key)
            log.warning("flip_intent_dropped service=%s to=%s: it did not land", key, intent.target)

    # ------------------------------------------------------------------ write and confirm

    def write(self, report: Report, provider: Provider) -> Report:
        """Write the planned change, then wait for it to be served. Never raises."""
        key, plan = report.service, report.plan
        assert plan is not None and plan.change is not None
        decision = plan.decision
        target = decision.target if decision.kind is Kind.MOVE else decision.current
        assert target is not None
        # A TTL-only change (degraded_ttl) is no flip: hold-down and the flip rate ignore it.
        flip = (
            None if plan.ttl_only else Flip(self.clock(), decision.current, target, decision.rule)
        )
        self._writing.add(key)
        try:
            if self._write(report, provider, flip):
                self.confirm(report, provider)
        finally:
            self._writing.discard(key)
        return report

    def _write(self, report: Report, provider: Provider, flip: Flip | None) -> bool:
        key, plan = report.service, report.plan
        assert plan is not None and plan.change is not None
        try:
            if flip is not None:
                self.store.begin_flip(key, flip)  # proves the state writable, before DNS moves
            else:
                self.store.update(lambda state: state)  # proves the state writable all the same
            crashpoint("before_write")
            started = time.monotonic()
            report.receipt = provider.apply(plan.change, fence=report.fence)
        except TransientError as e:
            report.error = str(e)  # it may have landed: the intent stays, the next read settles it
            report.transient = True
            report.pending = report.change
            return False
        except DnsFailoverError as e:
            if isinstance(e, FencedError):
                report.refused_by_fence, report.error = True, f"fenced: {e}"
            elif isinstance(e, ConflictError):
                report.conflicts += 1
                report.conflict, report.error = True, f"conflict: {e}"
            else:
                report.error, report.pending = str(e), report.change
            if flip is not None:
                self._forget(key)
            return False
        report.write_seconds = time.monotonic() - started
        report.write_acked_at = self.clock()
        report.applied = True
        crashpoint("after_write")
        log.info(
            "written service=%s change=%s seconds=%.3f", key, report.change, report.write_seconds
        )
        try:
            if flip is not None:
                self.store.complete_flip(key, replace(flip, at=report.write_acked_at))
        except DnsFailoverError as e:  # the intent stays: recovered at the next read
            log.error("flip_not_recorded service=%s error=%s", key, e)
        return True

    def confirm(self, report: Report, provider: Provider) -> Report:
        """Wait until every server that answers clients serves the applied change."""
        assert report.receipt is not None
        try:
            report.propagation = provider.wait(report.receipt, provider.propagation_timeout)
        except DnsFailoverError as e:
            view = ServerView(provider.name, False, str(e), 0.0)
            report.propagation = Propagation(False, 0.0, (view,))
        if not report.propagation.complete:
            log.error(
                "propagation_incomplete service=%s %s", report.service, report.propagation.summary()
            )
        return report

    def _forget(self, key: str) -> None:
        try:
            self.store.abandon_flip(key)
        except DnsFailoverError as e:
            log.error("flip_intent_not_cleared service=%s error=%s", key, e)

    # ------------------------------------------------------------------ verify

    def verify(self, report: Report, service: Service) -> Report:
        """A flip served everywhere: the new target as a client sees it, within the window
        clients may hold the old answer; after a practice run's move, the outcome command."""
        if not report.flipped:
            return report
        self._verify(report, service)
        practice, settings = report.intent.practice, service.practice
        command = settings.outcome_command if settings is not None else None
        if practice is not None and practice.ask is Ask.START and command is not None:
            report.checks.append(self._command(report, command, "outcome_command", "after_move"))
        return report

    @staticmethod
    def _verify(report: Report, service: Service) -> None:
        if not service.client_verify:
            return
        assert report.plan is not None and report.plan.change is not None
        target = next(i for i in service.instances if i.name == report.plan.decision.target)
        verifier = ClientVerifier(service, service.checks.connect_timeout)
        deadline = time.monotonic() + verify_window(service)
        report.verification = verifier.verify(target, report.plan.change.after, deadline)

    # ------------------------------------------------------------------ a run's check

    def check(self, key: str, service: Service, intent: Intent) -> Report:
        """While a practice run is on: its blocking command again (none: nothing to do)."""
        report = Report(key, intent)
        command = service.practice.blocking_command if service.practice else None
        if command is not None:
            report.checks.append(self._command(report, command, "blocking_command", "during"))
        return report

    # ------------------------------------------------------------------ fence

    @staticmethod
    def move_fence(
        key: str,
        service: Service,
        provider: Provider,
        token: int,
        site: str | None,
        may_write: Callable[[], bool],
    ) -> Report:
        """Move the service's fence to `token` (a new leader's first write for it)."""
        report = Report(key, change=f"fence {service.name} → epoch={token}", site=site,
                        fence=token)  # fmt: skip
        if not may_write():
            report.error = "not leading any more: fence not moved"
            return report
        try:
            before = provider.move_fence(service.name, token)
            report.applied = True
            report.pending = f"epoch={before}" if before is not None else "none"
        except FencedError as e:
            report.refused_by_fence, report.error = True, str(e)
        except DnsFailoverError as e:
            report.error = str(e)
        return report
