"""Several controllers, the pure parts: quorum health, the coordination config, the shared
state document, and the fence in a zone file (a real file, no server needed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dnsfailover.config import load_config
from dnsfailover.config.models import Coordination
from dnsfailover.controller.shared import Request, Shared, merge_flips, request_done
from dnsfailover.controller.state import Flip, Pin
from dnsfailover.controller.state import SavedState as Saved
from dnsfailover.errors import (
    ConfigError,
    ConflictError,
    FencedError,
    ProviderError,
    StateError,
)
from dnsfailover.health import State
from dnsfailover.health.quorum import SiteView, combine_sites, quorum_health
from dnsfailover.policy import Kind, PolicyInput, decide
from dnsfailover.providers.zonefile import ZoneFileProvider
from dnsfailover.rrset import Change, Fence, RRset
from tests.offline_config import offline_config
from tests.test_policy_decide import NOW, service

Y, N, K = State.HEALTHY, State.UNHEALTHY, State.UNKNOWN


def views(*states: State, since: float = NOW - 60) -> list[SiteView]:
    return [
        SiteView(f"s{i}", s, since + i, since + i if s is Y else None, f"{s.value} at s{i}")
        for i, s in enumerate(states)
    ]


# ----------------------------------------------------------------------------- quorum


@pytest.mark.parametrize(
    ("states", "k", "expected"),
    [
        ((Y, Y, N), 2, Y),  # one site cut off from the instance: still healthy
        ((N, N, Y), 2, N),  # really down where most sites look
        ((N, N, N), 2, N),
        ((Y, N, K), 2, K),  # no two agree: not settled
        ((N,), 2, K),  # a lone site never decides alone
        ((Y, Y), 2, Y),  # a site whose lease expired is simply absent
        ((N, Y, Y), 1, N),  # k = 1: any site's failure counts (unhealthy wins a tie)
        ((), 2, K),
    ],
)
def test_quorum_health(states: tuple[State, ...], k: int, expected: State) -> None:
    health = quorum_health("a", views(*states), k)
    assert health.state is expected
    assert ("not settled" in health.reason) == (expected is K)


def test_quorum_since_is_when_the_kth_site_agreed() -> None:
    health = quorum_health("a", views(N, N, N, since=1000.0), 2)
    assert health.since == 1001.0  # s0 at 1000, s1 at 1001: two agreed at 1001
    healthy = quorum_health("a", views(Y, Y, Y, since=1000.0), 2)
    assert healthy.passing_since == 1001.0
    assert healthy.reason.startswith("healthy: 3 of 3 sites agree (quorum 2): s0: healthy at s0")


def test_the_policy_moves_on_a_quorum_and_not_on_one_site() -> None:
    def decision(a: tuple[State, ...], b: tuple[State, ...]) -> Kind:
        per_site = {
            f"s{i}": {"a": SiteView(f"s{i}", sa, NOW - 60), "b": SiteView(f"s{i}", sb, NOW - 60,
                                                                            NOW - 60)}
            for i, (sa, sb) in enumerate(zip(a, b, strict=True))
        }  # fmt: skip
        health = combine_sites(["a", "b", "c"], per_site, 2)
        return decide(PolicyInput(service(), health, "a", None, frozenset(), (), NOW)).kind

    assert decision((N, Y, Y), (Y, Y, Y)) is Kind.KEEP  # one site cut off from a
    assert decision((N, N, Y), (Y, Y, Y)) is Kind.MOVE  # a really down


# ----------------------------------------------------------------------------- config


def coordination(**overrides: Any) -> dict[str, Any]:
    return {
        "site": "east",
        "sites": ["east", "west", "north"],
        "etcd": {"endpoints": ["http://127.0.0.1:2379"], **overrides.pop("etcd", {})},
        **overrides,
    }


def test_coordination_defaults() -> None:
    settings = Coordination.model_validate(coordination())
    assert settings.k == 2
    assert settings.etcd.lease_ttl == 5.0 and settings.etcd.deadline == pytest.approx(10 / 3)
    assert Coordination.model_validate(coordination(quorum=3)).k == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"site": "south"}, "not one of sites"),
        ({"sites": ["east", "east"]}, "named twice"),
        ({"quorum": 4}, "between 1 and 3"),
        ({"quorum": 0}, "between 1 and 3"),
        ({"etcd": {"lease_ttl": "1s"}}, "shorter than 2s"),
        ({"etcd": {"lease_ttl": "5s", "renew_deadline": "6s"}}, "shorter than lease_ttl"),
        ({"etcd": {"cert_file": "c.pem"}}, "go together"),
        ({"etcd": {"username": "dnsfailover"}}, "go together"),
        ({"etcd": {"timeout": "4s"}}, "shorter than the renew deadline"),
        ({"etcd": {"endpoints": []}}, "at least 1"),
        ({"etcd": {"endpoints": ["127.0.0.1:2379"]}}, "http"),
    ],
)
def test_coordination_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Coordination.model_validate(coordination(**overrides))


def test_a_config_with_coordination_loads_and_names_the_key_at_fault(tmp_path: Path) -> None:
    top = ("coordination: {site: east, sites: [east, west], quorum: 2, "
           "etcd: {endpoints: ['http://127.0.0.1:2379'], lease_ttl: 3s}}")  # fmt: skip
    loaded = load_config(offline_config(tmp_path, top=top)).config
    assert loaded.coordination is not None and loaded.coordination.k == 2
    bad = top.replace("quorum: 2", "quorum: 3")
    with pytest.raises(ConfigError, match="coordination"):
        load_config(offline_config(tmp_path, top=bad))


# ----------------------------------------------------------------------------- shared state


def test_the_shared_document_round_trips_and_refuses_garbage() -> None:
    shared = Shared(
        Saved(pins={"acme": Pin("b", "maintenance", 1.0)}),
        {"acme": Request("r1", "b", "maintenance", 1.0, "east")},
    )
    again = Shared.parse(shared.to_text())
    assert again == shared
    assert request_done("acme", "other")(again).requests  # a newer request stays
    assert not request_done("acme", "r1")(again).requests
    with pytest.raises(StateError, match="does not parse"):
        Shared.parse('{"version": 1, "pins": {"acme": "x"}}')
    with pytest.raises(StateError):
        Shared.parse("not json")


def test_flips_from_both_sides_are_merged_once() -> None:
    mine = {"acme": (Flip(100.0, "a", "b", "failover"),)}
    theirs = {"acme": (Flip(100.0, "a", "b", "failover"), Flip(50.0, None, "a", "manual"))}
    merged = merge_flips(mine, theirs, now=200.0)
    assert [f.at for f in merged["acme"]] == [50.0, 100.0]
    assert merge_flips(mine, {}, now=100.0 + 86400 + 1) == {"acme": ()}  # history kept: a day


# ----------------------------------------------------------------------------- fence


ZONE = """$ORIGIN example.test.
@ 60 IN SOA ns h 2026010100 2 3 4 5
@ 60 IN NS ns
acme 60 IN CNAME a.example.test.
"""


def zone_provider(tmp_path: Path) -> ZoneFileProvider:
    from dnsfailover.config.models import ZoneFileSettings

    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    settings = ZoneFileSettings.model_validate(
        {"type": "zonefile", "path": str(path), "zone": "example.test."}
    )
    return ZoneFileProvider("zone", settings)


def change(provider: ZoneFileProvider, to: str) -> Change:
    before = provider.read("acme.example.test.", "CNAME")
    return Change(before, RRset.of("acme.example.test.", "CNAME", 60, [to]))


def test_the_zone_file_fence_refuses_an_older_leader(tmp_path: Path) -> None:
    provider = zone_provider(tmp_path)
    assert provider.read_fence("acme.example.test.") is None
    assert provider.move_fence("acme.example.test.", 7) is None
    assert provider.read_fence("acme.example.test.") == 7
    provider.apply(change(provider, "b.example.test."), fence=7)
    with pytest.raises(FencedError, match="epoch=7, newer than ours"):
        provider.apply(change(provider, "a.example.test."), fence=5)
    assert provider.read("acme.example.test.", "CNAME") == RRset.of(
        "acme.example.test.", "CNAME", 60, ["b.example.test."]
    )
    provider.apply(change(provider, "a.example.test."), fence=9)  # a newer leader moves it
    assert provider.read_fence("acme.example.test.") == 9
    assert '_dnsfailover.acme 60 IN TXT "epoch=9"' in provider.path.read_text()


def test_the_zone_file_fence_is_checked_under_the_lock(tmp_path: Path) -> None:
    """A newer leader moved the fence between our read of it and our write: no write."""
    provider = zone_provider(tmp_path)
    provider.move_fence("acme.example.test.", 3)
    stale = Fence("acme.example.test.", 3, 3)
    ZoneFileProvider("other", provider.settings).move_fence("acme.example.test.", 4)
    with pytest.raises(ConflictError, match="holds epoch=4, not epoch=3"):
        provider._write(change(provider, "b.example.test."), stale)


def test_a_foreign_record_at_the_fence_name_is_an_error(tmp_path: Path) -> None:
    provider = zone_provider(tmp_path)
    provider.path.write_text(ZONE + '_dnsfailover.acme 60 IN TXT "hello"\n')
    with pytest.raises(ProviderError, match="not a dnsfailover fence"):
        provider.apply(change(provider, "b.example.test."), fence=1)


def test_the_example_configs_coordination_block_validates(tmp_path: Path) -> None:
    """configs/example.yaml documents the section commented out: uncommented, it loads."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "configs" / "example.yaml").read_text()
    head, block = text.split("# coordination:\n")
    lines = ["coordination:"] + [line[2:] for line in block.splitlines() if line.startswith("# ")]
    config = tmp_path / "example.yaml"
    config.write_text(head + "\n".join(lines) + "\n")
    found = load_config(config, files=False)  # its files are the operator's
    assert not found.warnings, found.warnings  # it obeys the sizing rule it states
    loaded = found.config
    assert loaded.coordination is not None
    assert loaded.coordination.site == "east" and loaded.coordination.k == 2
    assert loaded.coordination.etcd.deadline == pytest.approx(10)


# ----------------------------------------------------------------------------- leadership


class StubCoordinator:
    """The coordinator seam (`view`, `may_write`), with the view a test sets."""

    def __init__(self, view: Any) -> None:
        self.current = view

    def view(self) -> Any:
        return self.current

    def may_write(self) -> bool:
        return bool(self.current.may_write(time.monotonic()))


def test_leadership_journals_each_change_of_token_and_follows_past_its_deadline(
    tmp_path: Path,
) -> None:
    from dnsfailover.controller.journal import Journal
    from dnsfailover.controller.leadership import Leadership
    from dnsfailover.controller.state import StateStore
    from dnsfailover.coordination.coordinator import View

    settings = Coordination.model_validate(coordination())
    store = StateStore(tmp_path)
    now = time.monotonic()
    stub = StubCoordinator(View("east", leader="west", token=5, etcd_ok=True, deadline=3.0))
    lead = Leadership(settings, store, Journal(store), lambda: None,
                      coordinator=stub)  # type: ignore[arg-type]  # fmt: skip
    assert not lead.changed() and lead.token is None
    stub.current = View("east", leader="east", token=9, leading=True, renewed_at=now,
                        deadline=3.0, etcd_ok=True)  # fmt: skip
    assert lead.changed() and lead.token == 9 and lead.may_write()
    assert lead.changed() and lead.token == 9  # nothing new: no second entry
    stub.current = View("east", leader="east", token=12, leading=True, renewed_at=now,
                        deadline=3.0, etcd_ok=True)  # fmt: skip
    assert lead.changed() and lead.token == 12
    # Past the renew deadline: no write, whatever else holds.
    stub.current = View("east", leader="east", token=12, leading=True,
                        renewed_at=now - 3.5, deadline=3.0, etcd_ok=True)  # fmt: skip
    assert not lead.may_write()
    entries, _ = store.read_audit()
    assert [(e["event"], e["fence"]) for e in entries] == [
        ("leadership_acquired", 9),
        ("leadership_acquired", 12),
    ]


def test_validate_checks_the_etcd_secret_files(tmp_path: Path) -> None:
    top = ("coordination: {site: east, sites: [east], etcd: {endpoints: ['http://127.0.0.1:2379'], "
           f"username: root, password_file: {tmp_path / 'missing'}}}}}")  # fmt: skip
    with pytest.raises(ConfigError, match=r"coordination\.etcd\.password_file: secret file"):
        load_config(offline_config(tmp_path, top=top))
