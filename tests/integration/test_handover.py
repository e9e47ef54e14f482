"""One site's view never moves the name, and a leader that cannot do its job hands over:
drills against real etcd, BIND and Pebble, each controller in a site of its own
(lab/coordination.py). Every fault is a packet filter or a test hook inside one site.

The rules behind them are proven on a simulated clock in tests/test_leadership.py and
tests/test_coordination_core.py; these prove the wiring once per path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsfailover.config.models import Checks
from lab import Lab
from lab.coordination import A, B, Cluster
from lab.scenario import wait_for
from lab.sites import NETWORK

pytestmark = pytest.mark.usefixtures("isolated_network")  # the sites' bridge lives there

CHECKS = Checks.model_validate({"interval": "1s", "timeout": "800ms", "rise": 2, "fall": 2})
DETECTION = 2 * 1.0 + 0.8  # fall 2 × interval 1 s + the probe's timeout
LEASE = 2.0
HANDOVER = 2 * 1.0 + 2.0  # the default: 2 × the interval + the provider's timeout (2 s)
BIND = f"{NETWORK}.1"  # the lab's BIND (primary and secondary) on the sites' bridge


def test_with_one_site_down_a_split_of_the_two_others_holds_the_name(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    follower = next(s for s in cluster.daemons if s != leader)
    cluster.daemons[follower].stop()  # its report leaves with its lease
    wait_for(lambda: len(cluster.coordination(leader)["reporting"]) == 2, LEASE + 5,
             "the stopped site's report gone")  # fmt: skip
    cluster.sites[leader].cut([cluster.a.address])  # the leader's own site: the worst case
    own = cluster.daemons[leader]

    def quorum() -> dict[str, str]:
        return own.health()["services"]["acme"]["quorum"]["ca-a"]  # type: ignore[no-any-return,index]

    wait_for(lambda: quorum()["reason"].startswith("split: "), DETECTION + 5, "the split")
    seen = own.health()["updated"]  # type: ignore[index]
    hold = 3 * DETECTION + CHECKS.settle_window
    wait_for(lambda: own.health()["updated"] > seen + hold, hold + 10,  # type: ignore[index]
             "three detection periods and the settle window of the leader's decisions")  # fmt: skip
    assert cluster.served() == {A}
    assert not any(cluster.writes(s) for s in cluster.daemons)
    assert any(e.get("rule") == "quorum_held" for e in own.audit())
    assert 'verdict="split"} 1.0' in cluster.metrics(leader)
    cluster.a.kill()  # really down: both live sites agree
    wait_for(lambda: cluster.served() == {B}, DETECTION + 5, "the flip once ca-a is down")


def test_a_leader_cut_from_dns_hands_over_and_the_successor_fails_over(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    old = cluster.settled()
    token = cluster.coordination(old)["token"]
    cluster.sites[old].cut([BIND])  # its path to DNS only: etcd and the CAs still answer
    successor = cluster.wait_leader(other_than=old, timeout=HANDOVER + LEASE + 10)
    cluster.wait_fenced(successor)
    handed = [e for e in cluster.daemons[old].audit() if e["event"] == "leadership_handed_over"]
    assert len(handed) == 1 and handed[0]["fence"] == token
    assert "DNS unreachable" in handed[0]["reason"]
    status = cluster.cli(successor, "status")
    assert f"{old}: report fresh; DNS UNREACHABLE" in status.stdout, status.stdout
    assert cluster.served() == {A}  # a handover with no outage writes nothing
    cluster.a.kill()
    wait_for(lambda: cluster.served() == {B}, DETECTION + 10, "the successor's failover")
    wait_for(lambda: cluster.writes(successor), 10, "the successor's audit")
    [entry] = cluster.writes(successor)
    assert entry["fence"] == cluster.coordination(successor)["token"] > token
    cluster.sites[old].heal()
    wait_for(lambda: cluster.coordination(old).get("dns", {}).get("reachable"), HANDOVER + 5,
             "the old leader reaches DNS again")  # fmt: skip
    seen = cluster.daemons[successor].health()["updated"]  # type: ignore[index]
    wait_for(lambda: cluster.daemons[successor].health()["updated"] > seen + HANDOVER + 2,  # type: ignore[index]
             HANDOVER + 10, "a handover_after and more of rounds")  # fmt: skip
    assert cluster.leader() == successor  # leadership stays where it is
    assert cluster.writes(old) == []
    assert cluster.fence() == {f'"epoch={entry["fence"]}"'}


def test_a_follower_whose_probing_stalls_stops_counting(lab: Lab, tmp_path: Path) -> None:
    cluster = Cluster(lab, tmp_path)
    arm = tmp_path / "stall-north"
    cluster.start("east", "west")
    cluster.start("north", env={"DNSFAILOVER_CRASHPOINT": "probe:hang",
                                "DNSFAILOVER_CRASHPOINT_IF": str(arm)})  # fmt: skip
    leader = cluster.wait_leader()
    cluster.wait_fenced(leader)
    cluster.wait_reporting(leader)
    others = cluster.coordination(leader)["others"]
    wait_for(lambda: cluster.coordination(leader)["others"].get("north", {}).get("fresh"), 10,
             "north fresh")  # fmt: skip
    arm.touch()  # north's probes hang from now on; its coordinator still renews its lease
    wait_for(lambda: cluster.coordination(leader)["others"]["north"].get("fresh") is False,
             3 * 1.0 + 5, "north stale")  # fmt: skip
    assert "north" in cluster.coordination(leader)["reporting"]  # its lease lives on
    assert "north" not in cluster.coordination(leader)["fresh"]
    assert others  # (the status had every other site from the start)
    cluster.a.kill()  # the other two see it and move the name
    wait_for(lambda: cluster.served() == {B}, DETECTION + 5, "the flip")
