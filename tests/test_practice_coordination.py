"""Practice runs with several controllers (no etcd: the shared document and the leadership
seam with a stub coordinator): the leader's run on now is in the shared document, every
follower keeps a copy in its state directory, and whoever leads next takes it over and ends
it on time; a follower drops the run from its record. A drill asked on any site's host
travels in the document to the leader (checked: it comes from outside), is taken once, and
its run's reports come back to every site; the schedule goes on from the last run any
leader started."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dnsfailover.config.models import Coordination, Service
from dnsfailover.controller.drills import Drills
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.leadership import DRILL_STALE, Leadership
from dnsfailover.controller.machine import Lead, Rules, ServiceRecord, step
from dnsfailover.controller.practice import Outcome, Phase, Run
from dnsfailover.controller.runs import DrillRequest, RunStore
from dnsfailover.controller.shared import Shared, SharedStore, with_practice, with_run
from dnsfailover.controller.state import StateStore
from dnsfailover.coordination.coordinator import View
from dnsfailover.metrics import Metrics
from tests.test_coordination_core import StubCoordinator, coordination

RUN = Run("r1", "b", "drill", 600.0, 100.0, origin="a", phase=Phase.ON, ends_at=700.0)


def test_the_run_on_travels_in_the_shared_document_and_goes_with_its_end() -> None:
    shared = with_run("acme", RUN.to_json())(Shared())
    parsed = Shared.parse(shared.to_text())
    assert Run.from_json(parsed.runs["acme"]) == RUN
    assert with_run("acme", None)(parsed).runs == {}
    assert Shared.parse('{"version": 1}').runs == {}  # a document from before runs


class Stub(StubCoordinator):
    """The stub coordinator, keeping the etcd writes the leadership queues (applied to a
    document by `applied`)."""

    state_key = "/dnsfailover/state"

    def __init__(self, view: Any) -> None:
        super().__init__(view)
        self.submitted: list[tuple[Any, bool]] = []

    def submit(self, action: Any, leading_only: bool = False) -> None:
        self.submitted.append((action, leading_only))

    def applied(self, text: str | None) -> Shared:
        class Etcd:
            value = text

            def update(self, key: str, change: Any) -> str:
                self.value = change(self.value)
                return self.value

        etcd = Etcd()
        for action, _ in self.submitted:
            action(etcd)
        return Shared.parse(etcd.value)


def _leadership(tmp_path: Path, view: View) -> tuple[Leadership, Stub]:
    store = StateStore(tmp_path)
    stub = Stub(view)
    lead = Leadership(Coordination.model_validate(coordination()), store, Journal(store),
                      lambda: None, coordinator=stub)  # type: ignore[arg-type]  # fmt: skip
    lead.services = lambda: ["acme"]
    return lead, stub


def test_a_follower_keeps_a_copy_of_the_leaders_run_and_drops_it_at_its_end(
    tmp_path: Path,
) -> None:
    text = with_run("acme", RUN.to_json())(Shared()).to_text()
    lead, stub = _leadership(tmp_path, View("east", leader="west", token=5, etcd_ok=True,
                                             shared=text))  # fmt: skip
    lead.changed()
    assert RunStore(tmp_path).current("acme") == RUN
    stub.current = View("east", leader="west", token=5, etcd_ok=True, shared=Shared().to_text())
    lead.changed()
    assert RunStore(tmp_path).current("acme") is None


def test_the_leader_keeps_its_own_run_whatever_the_document_says_meanwhile(
    tmp_path: Path,
) -> None:
    RunStore(tmp_path).save("acme", RUN)
    now = time.monotonic()
    lead, _ = _leadership(tmp_path, View("east", leader="east", token=9, leading=True,
                                         renewed_at=now, deadline=3.0, etcd_ok=True,
                                         shared=Shared().to_text()))  # fmt: skip
    assert lead.changed()
    assert RunStore(tmp_path).current("acme") == RUN  # its share may not have landed yet


def test_a_follower_drops_the_run_from_its_record_a_leader_keeps_it() -> None:
    record = ServiceRecord(token=9, run=RUN)
    rules: Any = Rules(first_backoff=1.0, coordinated=True)
    kept, _ = step(record, Lead(12), 0.0, rules)
    dropped, _ = step(record, Lead(None), 0.0, rules)
    assert kept.run == RUN and dropped.run is None


# ----------------------------------------------------------------------------- drills from any site

REQUEST = DrillRequest("d1", "acme", "b", 60.0, "game day", 1000.0)


def test_each_step_of_a_run_travels_and_its_end_is_kept_with_the_schedules_last_run() -> None:
    cancel = replace(REQUEST, cancel=True)  # asked meanwhile: stays for the leader to take
    asked = replace(Shared(), drills={"acme": cancel})
    started = replace(RUN, id="d1", requested_at=1000.0)
    on = with_practice("acme", started.to_json(), on=True)(asked)
    assert on.runs["acme"]["id"] == "d1" and on.drills == {"acme": cancel}
    assert on.last_run == {"acme": 1000.0}
    ended = started.end(Outcome.SUCCEEDED, "", 1100.0)
    done = Shared.parse(with_practice("acme", ended.to_json(), on=False)(on).to_text())
    assert done.runs == {} and Run.from_json(done.ended["acme"]) == ended


def test_a_refusal_beside_a_run_on_keeps_the_run_and_the_schedules_last_run() -> None:
    on = with_run("acme", RUN.to_json())(Shared())
    refused = Run("r2", "b", "drill", 60.0, 5000.0, phase=Phase.ENDED, outcome=Outcome.REFUSED)
    after = with_practice("acme", refused.to_json(), on=False)(on)
    assert after.runs == on.runs and after.ended["acme"]["id"] == "r2"
    assert after.last_run == {}


def test_a_failover_request_keeps_the_run_on_in_the_document() -> None:
    # It rebuilt the document from its state and requests alone, dropping the run on.
    class FakeEtcd:
        text: str | None = with_run("acme", RUN.to_json())(Shared()).to_text()

        def update(self, key: str, change: Any) -> str:
            self.text = change(self.text)
            return self.text

    etcd = FakeEtcd()
    store = SharedStore(Coordination.model_validate(coordination()), etcd)  # type: ignore[arg-type]
    store.request_failover("acme", "a", "manual")
    assert Shared.parse(etcd.text).runs["acme"]["id"] == RUN.id


@pytest.mark.parametrize(
    ("drill", "error"),
    [
        ({**vars(REQUEST), "id": "../../state"}, "an id is 1 to 64"),
        ({**vars(REQUEST), "to": 7}, "strings"),
        ({**vars(REQUEST), "duration": -1}, "more than 0 seconds"),
        ({**vars(REQUEST), "at": float("nan")}, "finite"),
        ({**vars(REQUEST), "duration": True}, "numbers"),
        ({**vars(REQUEST), "cancel": "yes"}, "booleans"),
        ({**vars(REQUEST), "extra": 1}, "unknown fields"),
        ("run it", "not a mapping"),
    ],
)
def test_a_drill_request_in_the_document_is_checked_before_anything_uses_it(
    drill: Any, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    parsed = Shared.parse(json.dumps({"version": 1, "drills": {"acme": drill}}))
    assert parsed.drills == {}  # left out, the rest of the document read
    assert error in caplog.text


def test_the_leader_takes_a_drill_once_its_cancel_once_and_never_a_stale_one(
    tmp_path: Path,
) -> None:
    now = time.time()
    shared = replace(Shared(), drills={"acme": replace(REQUEST, at=now)})
    lead, stub = _leadership(tmp_path, View("east", leader="east", token=9, leading=True,
                                            renewed_at=time.monotonic(), deadline=3.0,
                                            etcd_ok=True, shared=shared.to_text()))  # fmt: skip
    lead.changed()
    assert lead.take_drill("acme") == replace(REQUEST, at=now)
    assert lead.take_drill("acme") is None  # once
    assert all(only for _, only in stub.submitted)  # a leader's write: never after the lead
    assert stub.applied(shared.to_text()).drills == {}  # taken out of the document
    cancel = replace(REQUEST, at=now, cancel=True)
    stub.current = replace(stub.current, shared=replace(shared, drills={"acme": cancel}).to_text())
    lead.changed()
    assert lead.take_drill("acme") == cancel  # the run's own id, asked to end
    assert lead.take_drill("acme") is None  # and its cancel once too
    stale = replace(REQUEST, id="d2", at=now - DRILL_STALE - 1)
    stub.current = replace(stub.current, shared=replace(shared, drills={"acme": stale}).to_text())
    lead.changed()
    assert lead.shared.drills["acme"].id == "d2"  # read, and refused for its age alone
    stub.submitted.clear()
    assert lead.take_drill("acme") is None
    assert stub.applied(stub.current.shared).drills == {}  # dropped: no next leader takes it


def test_a_follower_keeps_every_report_the_leader_shared_for_drill_on_its_host(
    tmp_path: Path,
) -> None:
    ended = RUN.end(Outcome.SUCCEEDED, "", 800.0)
    text = with_practice("acme", ended.to_json(), on=False)(Shared()).to_text()
    lead, _ = _leadership(tmp_path, View("east", leader="west", token=5, etcd_ok=True,
                                         shared=text))  # fmt: skip
    lead.changed()
    report = RunStore(tmp_path).report(RUN.id)
    assert report is not None and report["outcome"] == "SUCCEEDED" and report["service"] == "acme"
    assert RunStore(tmp_path).current("acme") is None


def _drills(tmp_path: Path) -> Drills:
    return Drills(RunStore(tmp_path), Metrics())


def _service() -> Service:
    return Service.model_validate({
        "provider": "dns", "name": "acme.example.test.",
        "practice": {"every": "7d", "duration": "30m"},
        "instances": [{"name": n, "target": f"{n}.example.test.",
                       "acme": {"directory": f"https://{n}.example.test/d"}} for n in "ab"],
    })  # fmt: skip


def test_a_new_leader_goes_on_with_the_schedule_from_the_shared_last_run(tmp_path: Path) -> None:
    settings = _service()
    now = 10 * 86400.0
    fresh = _drills(tmp_path / "fresh")  # a controller that never ran one itself
    assert fresh.intent("acme", settings, True, now, last_shared=now - 6 * 86400) is None
    assert fresh.intent("acme", settings, True, now, last_shared=now - 7 * 86400) is not None
    relayed = replace(REQUEST, to="z")  # checked again where it is carried out
    assert _drills(tmp_path / "other").intent("acme", settings, False, now, relayed) is None
    intent = _drills(tmp_path / "third").intent("acme", settings, False, now, REQUEST)
    assert intent is not None and intent.to == "b" and intent.practice is not None
    assert intent.practice.run == "d1" and intent.practice.duration == 60.0


def test_a_late_step_of_a_run_that_ended_never_brings_it_back() -> None:
    ended = with_practice("acme", RUN.end(Outcome.SUCCEEDED, "", 800.0).to_json(), on=False)
    done = ended(with_run("acme", RUN.to_json())(Shared()))
    late = with_practice("acme", RUN.to_json(), on=True)(done)  # an old leader's queued write
    assert late.runs == {} and late.ended["acme"]["outcome"] == "SUCCEEDED"


def test_one_bad_drill_request_is_left_out_and_the_document_still_reads() -> None:
    text = json.dumps({"version": 1, "drills": {"acme": {**vars(REQUEST), "new_field": 1},
                                                "other": vars(REQUEST)}})  # fmt: skip
    assert list(Shared.parse(text).drills) == ["other"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("ends_at", "later"), ("ended_at", "soon"), ("requested_at", float("nan")),
     ("target", 7), ("id", "../../state"), ("timeline", "go"), ("checks", [{"name": 1}])],
)  # fmt: skip
def test_a_forged_report_from_etcd_is_not_kept_and_breaks_nothing_on_a_follower(
    tmp_path: Path, field: str, value: Any
) -> None:
    forged = {**RUN.end(Outcome.SUCCEEDED, "", 800.0).to_json(), field: value}
    text = json.dumps({"version": 1, "ended": {"acme": forged}, "runs": {"acme": forged}})
    lead, _ = _leadership(tmp_path, View("east", leader="west", token=5, etcd_ok=True,
                                         shared=text))  # fmt: skip
    lead.changed()  # logged, never raised
    runs = RunStore(tmp_path)
    assert runs.current("acme") is None and runs.last_report("acme") is None
    assert list(runs.reports.glob("*.json")) == []
    drills = _drills(tmp_path)
    drills.start("acme", _service(), 1000.0, False)  # a start or a reload reads the reports


def test_a_follower_keeps_only_the_last_reports(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("dnsfailover.controller.runs.KEPT", 3)
    runs = RunStore(tmp_path)
    for n in range(5):
        ended = replace(RUN, id=f"r{n}", requested_at=float(n)).end(Outcome.SUCCEEDED, "", 9.0)
        runs.mirror({}, {"acme": ended.to_json()}, ["acme"])
    assert len(list(runs.reports.glob("*.json"))) == 3
