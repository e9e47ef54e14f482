"""Several controllers, the pure parts: quorum health, the coordination config, the shared
state document, and the fence in a zone file (a real file, no server needed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
from dnsfailover.health.quorum import SiteView, Verdict, combine_sites, quorum_health
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
        ((Y, Y, N), 2, Verdict.HEALTHY),  # one site cut off from the instance: still healthy
        ((N, N, Y), 2, Verdict.UNHEALTHY),  # really down where most sites look
        ((N, N, N), 2, Verdict.UNHEALTHY),
        ((Y, N, K), 2, Verdict.SPLIT),  # one site down, the two others disagree: held
        ((Y, N), 2, Verdict.SPLIT),
        ((N,), 2, Verdict.UNKNOWN),  # a lone site never decides alone
        ((N, K, K), 2, Verdict.UNKNOWN),  # UNKNOWN reports are no verdicts
        ((Y, Y), 2, Verdict.HEALTHY),  # a site whose lease expired is simply absent
        ((N, Y, Y), 1, Verdict.SPLIT),  # k = 1 and both kinds reach it: held
        ((N, K, K), 1, Verdict.UNHEALTHY),  # k = 1: one site's view moves the name
        ((), 2, Verdict.UNKNOWN),
    ],
)
def test_quorum_health(states: tuple[State, ...], k: int, expected: Verdict) -> None:
    health = quorum_health("a", views(*states), k)
    assert health.verdict is expected
    held = expected in (Verdict.SPLIT, Verdict.UNKNOWN)
    assert health.held is held and (health.state is K) is held
    assert health.reason.startswith({Verdict.SPLIT: "split: ", Verdict.UNKNOWN: "not settled"}
                                    .get(expected, expected.value))  # fmt: skip


def test_a_split_names_each_site_and_why() -> None:
    east = SiteView("east", N, NOW, None, "directory: connection refused")
    west = SiteView("west", Y, NOW, NOW)
    health = quorum_health("a", [west, east], 2)
    assert health.reason == (
        "split: east unhealthy (directory: connection refused), west healthy; 2 sites must agree"
    )


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
    assert decision((N, Y), (Y, Y)) is Kind.KEEP  # a site down, the two others split: held


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=1, max_value=5).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(min_value=n // 2 + 1, max_value=n),  # k > n/2
            st.lists(st.sampled_from(["Y", "N", "K", "stale", "dead"]), min_size=n, max_size=n),
            st.lists(st.sampled_from(["Y", "N", "K", "stale", "dead"]), min_size=n, max_size=n),
            st.booleans(),
        )
    )
)
def test_the_name_never_leaves_an_active_unless_k_fresh_sites_call_it_unhealthy(
    case: tuple[int, int, list[str], list[str], bool],
) -> None:
    """Random site views (live, stale, dead) with k > n/2, inside or past the settle window:
    a move away from the active `a` happens only when k fresh sites call it unhealthy."""
    _, k, a_views, b_views, settled = case
    codes = {"Y": Y, "N": N, "K": K}
    per_site: dict[str, dict[str, SiteView]] = {}
    for i, (va, vb) in enumerate(zip(a_views, b_views, strict=True)):
        if va in ("stale", "dead"):
            continue  # the reader drops a stale or dead site's report before the quorum
        site = f"s{i}"
        per_site[site] = {"a": SiteView(site, codes[va], NOW - 60, NOW - 60),
                          "b": SiteView(site, codes.get(vb, K), NOW - 60,
                                        NOW - 60)}  # fmt: skip
    health = combine_sites(["a", "b", "c"], per_site, k)
    settle_until = NOW - 1 if settled else NOW + 30
    made = decide(PolicyInput(service(), health, "a", None, frozenset(), (), NOW,
                              settle_until))  # fmt: skip
    fresh_unhealthy = sum(1 for views in per_site.values() if views["a"].state is N)
    if made.kind is Kind.MOVE:
        assert fresh_unhealthy >= k


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
