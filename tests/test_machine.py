"""The per-service record's rules (controller/machine.py), on a simulated clock: no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dnsfailover.controller.machine import (
    Action,
    Do,
    Done,
    Entry,
    Lead,
    Rules,
    ServiceRecord,
    Tick,
    Wake,
    step,
)
from dnsfailover.controller.report import Intent, Origin, Report
from dnsfailover.plan import Change, Plan
from dnsfailover.policy import Decision, Kind
from dnsfailover.providers import Propagation
from dnsfailover.rrset import RRset

RULES = Rules(first_backoff=1.0, max_backoff=30.0)
OPERATOR = Intent(Origin.OPERATOR, "b", "maintenance")


def planned(**fields: object) -> Report:
    """A prepared report that wants a write (a → b)."""
    decision = Decision(Kind.MOVE, "a", "b", "failover", "a unhealthy")
    before = RRset.of("acme.example.test.", "CNAME", 60, ["a.example.test."])
    after = RRset.of("acme.example.test.", "CNAME", 60, ["b.example.test."])
    plan = Plan("acme", decision, Change(before, after))
    return replace(Report("acme", decision=decision, plan=plan, change="a → b"), **fields)


def written(**fields: object) -> Report:
    served = Propagation(True, 0.1, ())
    return replace(planned(), applied=True, propagation=served, **fields)


def kept() -> Report:
    return Report("acme", decision=Decision(Kind.KEEP, "a", None, "sticky", "a healthy"))


def dos(actions: list[Action]) -> list[Do]:
    return [a.do for a in actions]


def run(record: ServiceRecord, *events: object, now: float = 0.0, rules: Rules = RULES):
    actions: list[Action] = []
    for event in events:
        record, actions = step(record, event, now, rules)  # type: ignore[arg-type]
    return record, actions


# ----------------------------------------------------------------------------- one change


def test_a_wake_prepares_and_a_planned_change_is_written_then_journaled_and_verified() -> None:
    record, actions = run(ServiceRecord(), Wake(Intent(trigger_at=5.0)))
    assert dos(actions) == [Do.PREPARE] and actions[0].intent == Intent(trigger_at=5.0)
    report = planned()
    record, actions = run(record, Done(Do.PREPARE, report))
    assert dos(actions) == [Do.WRITE] and record.busy is Do.WRITE
    record, actions = run(record, Done(Do.WRITE, written()))
    assert dos(actions) == [Do.JOURNAL, Do.VERIFY]
    assert record.idle and record.active == "b" and record.verifying
    record, actions = run(record, Done(Do.VERIFY, written()))
    assert [(a.do, a.entry) for a in actions] == [(Do.JOURNAL, Entry.VERIFICATION)]
    assert not record.verifying


def test_nothing_to_write_is_journaled_and_the_record_rests() -> None:
    record, actions = run(ServiceRecord(), Wake(), Done(Do.PREPARE, kept()))
    assert [(a.do, a.entry) for a in actions] == [(Do.JOURNAL, Entry.DECISION)]
    assert record.idle and record.active == "a" and record.retry.at is None


def test_a_wake_while_busy_waits_and_runs_when_the_step_lands() -> None:
    record, _ = run(ServiceRecord(), Wake())
    record, actions = run(record, Wake(Intent(trigger_at=7.0)))
    assert actions == [] and record.waiting == Intent(trigger_at=7.0)
    record, actions = run(record, Done(Do.PREPARE, kept()))
    assert dos(actions) == [Do.JOURNAL, Do.PREPARE] and record.waiting is None


def test_an_operators_intent_is_kept_over_the_policys_while_busy() -> None:
    record, _ = run(ServiceRecord(), Wake())
    record, _ = run(record, Wake(OPERATOR), Wake(Intent(trigger_at=1.0)))
    assert record.waiting == OPERATOR


def test_a_tick_while_a_step_runs_does_nothing() -> None:
    record, _ = run(ServiceRecord(), Wake())
    assert run(record, Tick())[1] == []


def test_client_verification_is_off_when_the_service_says_so() -> None:
    rules = replace(RULES, verify=False)
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, planned()), rules=rules)
    assert dos(run(record, Done(Do.WRITE, written()), rules=rules)[1]) == [Do.JOURNAL]


# ----------------------------------------------------------------------------- backoff


def test_a_failed_change_backs_off_doubling_up_to_the_cap() -> None:
    record = ServiceRecord()
    now, waits = 0.0, []
    for _ in range(8):
        record, _ = run(record, Tick(), now=now)
        failed = replace(planned(), error="SERVFAIL", pending="a → b")
        record, _ = run(record, Done(Do.PREPARE, failed), now=now)
        assert record.retry.at is not None
        waits.append(record.retry.at - now)
        # the edge: nothing just before it is due, a prepare exactly at it
        assert run(record, Tick(), now=record.retry.at - 0.001)[1] == []
        now = record.retry.at
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


def test_success_ends_the_backoff() -> None:
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, replace(kept(), error="x")))
    assert record.retry.at == 1.0
    record, _ = run(record, Tick(), Done(Do.PREPARE, kept()), now=1.0)
    assert record.retry.at is None and record.retry.tries == 0
    assert dos(run(record, Tick(), now=1.0)[1]) == [Do.PREPARE]  # every tick decides again


def test_one_shot_rules_give_up_after_their_retries_and_at_once_on_a_hard_error() -> None:
    rules = Rules(first_backoff=0.5, max_backoff=1.0, give_up_after=2, retry_only_transient=True)
    transient = replace(kept(), error="SERVFAIL", transient=True)
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, transient), rules=rules)
    assert record.retry.at == 0.5
    record, _ = run(record, Tick(), Done(Do.PREPARE, transient), now=0.5, rules=rules)
    assert record.retry.at == 1.5
    record, _ = run(record, Tick(), Done(Do.PREPARE, transient), now=1.5, rules=rules)
    assert record.retry.at is None and record.gave_up
    assert run(record, Tick(), now=100.0, rules=rules)[1] == []
    hard = replace(kept(), error="REFUSED")
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, hard), rules=rules)
    assert record.gave_up


def test_an_operators_move_is_retried_as_itself_after_a_transient_error() -> None:
    record, _ = run(ServiceRecord(), Wake(OPERATOR))
    failed = replace(planned(intent=OPERATOR), error="timeout", transient=True)
    record, _ = run(record, Done(Do.PREPARE, failed))
    _, actions = run(record, Tick(), now=1.0)
    assert actions[0].intent == OPERATOR


def test_an_operators_move_that_cannot_be_made_is_not_asked_again() -> None:
    record, _ = run(ServiceRecord(), Wake(OPERATOR))
    failed = replace(kept(), intent=OPERATOR, error="'z' is not an instance of the service")
    record, _ = run(record, Done(Do.PREPARE, failed))
    _, actions = run(record, Tick(), now=1.0)
    assert actions[0].intent == Intent()  # the policy decides from here


# ----------------------------------------------------------------------------- conflicts


def test_a_conflict_is_re_read_at_once_up_to_the_limit_then_at_the_pace_of_ticks() -> None:
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, planned()))
    for attempt in (1, 2, 3):
        record, actions = run(record, Done(Do.WRITE, replace(planned(), conflict=True, error="c")))
        assert dos(actions) == [Do.JOURNAL, Do.PREPARE] and record.conflicts == attempt
        assert actions[1].intent == Intent()  # re-decided by the policy
        record, _ = run(record, Done(Do.PREPARE, planned()))
    record, actions = run(record, Done(Do.WRITE, replace(planned(), conflict=True, error="c")))
    assert dos(actions) == [Do.JOURNAL] and record.conflicts == 4 and record.retry.at is None
    assert dos(run(record, Tick())[1]) == [Do.PREPARE]  # the next tick tries again
    record, _ = run(record, Tick(), Done(Do.PREPARE, planned()), Done(Do.WRITE, written()))
    assert record.conflicts == 0


def test_the_conflicts_so_far_travel_with_the_next_report() -> None:
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, planned()))
    record, _ = run(record, Done(Do.WRITE, replace(planned(), conflict=True, error="c")))
    report = planned()
    run(record, Done(Do.PREPARE, report))
    assert report.conflicts == 1


def test_an_operators_move_meeting_a_conflict_is_not_retried_when_the_rules_say_so() -> None:
    rules = replace(RULES, max_conflicts=0)
    record, _ = run(ServiceRecord(), Wake(OPERATOR), Done(Do.PREPARE, planned()), rules=rules)
    conflict = replace(planned(intent=OPERATOR), conflict=True, error="c")
    record, actions = run(record, Done(Do.WRITE, conflict), rules=rules)
    assert dos(actions) == [Do.JOURNAL] and record.retry_intent is None


# ----------------------------------------------------------------------------- unconfirmed


def test_an_unconfirmed_change_is_checked_again_with_backoff_then_verified() -> None:
    unserved = replace(planned(), applied=True, propagation=Propagation(False, 5.0, ()))
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, planned()))
    record, actions = run(record, Done(Do.WRITE, unserved), now=10.0)
    assert dos(actions) == [Do.JOURNAL] and record.unconfirmed is unserved
    assert record.confirm.at == 11.0
    assert dos(run(record, Tick(), now=10.5)[1]) == [Do.PREPARE]  # not due: decides as usual
    record, actions = run(record, Tick(), now=11.0)
    assert dos(actions) == [Do.CONFIRM] and actions[0].report is unserved
    record, actions = run(record, Done(Do.CONFIRM, unserved), now=11.0)
    assert [(a.do, a.entry) for a in actions] == [(Do.JOURNAL, Entry.CONFIRMATION)]
    assert record.confirm.at == 13.0  # 2 s: doubled
    unserved.propagation = Propagation(True, 0.2, ())
    record, actions = run(record, Tick(), Done(Do.CONFIRM, unserved), now=13.0)
    assert dos(actions) == [Do.JOURNAL, Do.VERIFY] and record.unconfirmed is None


def test_a_new_change_supersedes_an_unconfirmed_one() -> None:
    unserved = replace(planned(), applied=True, propagation=Propagation(False, 5.0, ()))
    record, _ = run(ServiceRecord(), Wake(), Done(Do.PREPARE, planned()), Done(Do.WRITE, unserved))
    record, _ = run(record, Wake(), Done(Do.PREPARE, planned()))
    assert record.unconfirmed is None and record.busy is Do.WRITE


# ----------------------------------------------------------------------------- leadership

COORDINATED = replace(RULES, coordinated=True)


def test_a_follower_decides_nothing() -> None:
    record, actions = run(ServiceRecord(), Wake(OPERATOR), Tick(), rules=COORDINATED)
    assert actions == [] and record.idle and record.waiting is None


def test_a_new_leader_moves_the_fence_first_and_then_decides() -> None:
    record, actions = run(ServiceRecord(), Lead(9), Wake(OPERATOR), rules=COORDINATED)
    assert dos(actions) == [Do.FENCE] and actions[0].token == 9 and record.waiting == OPERATOR
    moved = Report("acme", applied=True, fence=9, site="east")
    record, actions = run(record, Done(Do.FENCE, moved), rules=COORDINATED)
    assert [(a.do, a.entry) for a in actions] == [(Do.JOURNAL, Entry.FENCE), (Do.PREPARE, None)]
    assert actions[1].intent == OPERATOR and record.fence == 9
    record, _ = run(record, Done(Do.PREPARE, kept()), rules=COORDINATED)
    assert dos(run(record, Tick(), rules=COORDINATED)[1]) == [Do.PREPARE]  # fenced: no move


def test_a_fence_that_did_not_move_backs_off_and_is_tried_again() -> None:
    record, _ = run(ServiceRecord(), Lead(9), Tick(), rules=COORDINATED)
    failed = Report("acme", error="timeout", fence=9)
    record, actions = run(record, Done(Do.FENCE, failed), now=0.0, rules=COORDINATED)
    assert dos(actions) == [Do.JOURNAL] and record.fence is None and record.retry.at == 1.0
    assert run(record, Tick(), now=0.5, rules=COORDINATED)[1] == []
    assert dos(run(record, Tick(), now=1.0, rules=COORDINATED)[1]) == [Do.FENCE]


def test_a_fence_moved_for_an_older_token_does_not_count() -> None:
    record, _ = run(ServiceRecord(), Lead(9), Tick(), Lead(12), rules=COORDINATED)
    record, actions = run(record, Done(Do.FENCE, Report("acme", applied=True, fence=9)),
                          rules=COORDINATED)  # fmt: skip
    assert record.fence is None and dos(actions) == [Do.JOURNAL]


def test_a_write_refused_by_the_fence_gives_the_fence_up() -> None:
    record, _ = run(ServiceRecord(), Lead(9), Tick(), rules=COORDINATED)
    record, _ = run(record, Done(Do.FENCE, Report("acme", applied=True, fence=9)),
                    Done(Do.PREPARE, planned()), rules=COORDINATED)  # fmt: skip
    refused = replace(planned(), refused_by_fence=True, error="fenced: epoch=12")
    record, _ = run(record, Done(Do.WRITE, refused), rules=COORDINATED)
    assert record.fence is None and record.retry.at == 1.0


def test_leadership_lost_then_won_again_moves_the_fences_again() -> None:
    record, _ = run(ServiceRecord(), Lead(9), rules=COORDINATED)
    record = replace(record, fence=9)
    record, _ = run(record, Lead(None), Lead(14), rules=COORDINATED)
    assert record.fence is None and record.token == 14


def test_a_dry_run_leader_has_no_fence_to_move() -> None:
    rules = replace(COORDINATED, dry_run=True)
    _, actions = run(ServiceRecord(), Lead(9), Wake(), rules=rules)
    assert dos(actions) == [Do.PREPARE]


@pytest.mark.parametrize("token", [None, 9])
def test_a_lead_event_never_starts_a_step_by_itself(token: int | None) -> None:
    assert run(ServiceRecord(), Lead(token), rules=COORDINATED)[1] == []
