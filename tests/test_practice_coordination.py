"""Practice runs with several controllers (no etcd: the shared document and the leadership
seam with a stub coordinator): the leader's run on now is in the shared document, every
follower keeps a copy in its state directory, and whoever leads next takes it over and ends
it on time; a follower drops the run from its record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dnsfailover.config.models import Coordination
from dnsfailover.controller.journal import Journal
from dnsfailover.controller.leadership import Leadership
from dnsfailover.controller.machine import Lead, Rules, ServiceRecord, step
from dnsfailover.controller.practice import Phase, Run
from dnsfailover.controller.runs import RunStore
from dnsfailover.controller.shared import Shared, with_run
from dnsfailover.controller.state import StateStore
from dnsfailover.coordination.coordinator import View
from tests.test_coordination_core import StubCoordinator, coordination

RUN = Run("r1", "b", "drill", 600.0, 100.0, origin="a", phase=Phase.ON, ends_at=700.0)


def test_the_run_on_travels_in_the_shared_document_and_goes_with_its_end() -> None:
    shared = with_run("acme", RUN.to_json())(Shared())
    parsed = Shared.parse(shared.to_text())
    assert Run.from_json(parsed.runs["acme"]) == RUN
    assert with_run("acme", None)(parsed).runs == {}
    assert Shared.parse('{"version": 1}').runs == {}  # a document from before runs


def _leadership(tmp_path: Path, view: View) -> tuple[Leadership, StubCoordinator]:
    store = StateStore(tmp_path)
    stub = StubCoordinator(view)
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
