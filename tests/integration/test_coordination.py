"""Several controllers, one writer: drills against real etcd, BIND and Pebble, with each
controller in a network-namespace site of its own (lab/coordination.py, lab/sites.py).

Every partition is a packet filter inside one site; nothing in dnsfailover is switched.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from lab import Lab
from lab.coordination import A, B, Cluster, is_stopped
from lab.scenario import NAME, wait_for

pytestmark = pytest.mark.usefixtures("isolated_network")  # the sites' bridge lives there

DETECTION = 2 * 1.0 + 0.8  # fall 2 × interval 1 s + the probe's timeout
LEASE = 2.0


def test_a_follower_completes_the_failover_when_the_leader_dies(lab: Lab, tmp_path: Path) -> None:
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    assert cluster.served() == {A}
    cluster.a.kill()
    cluster.daemons[leader].kill()  # the leader dies with the CA's outage under way
    wait_for(lambda: cluster.served() == {B}, DETECTION + LEASE + 8, "the name on ca-b")
    successor = cluster.wait_leader(other_than=leader)
    wait_for(lambda: cluster.writes(successor), 10, "the successor's audit of its write")
    [entry] = cluster.writes(successor)
    assert (entry["from"], entry["to"]) == ("ca-a", "ca-b")
    assert entry["site"] == successor
    assert entry["fence"] == cluster.coordination(successor)["token"]
    assert cluster.fence() == {f'"epoch={entry["fence"]}"'}


def test_a_frozen_leader_thawed_with_a_write_in_flight_is_refused_by_bind(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    # east leads first, and freezes itself between reading the fence and sending its UPDATE.
    cluster.start("east", env={"DNSFAILOVER_CRASHPOINT": "fenced_write:stop"})
    assert cluster.wait_leader() == "east"
    old = cluster.wait_fenced("east")["fence"]
    cluster.start("west", "north")
    cluster.wait_reporting("east")
    cluster.a.kill()
    east = cluster.daemons["east"]
    is_stopped(east.pid)  # frozen, its write of ca-a → ca-b in flight
    east.frozen = True
    successor = cluster.wait_leader(other_than="east", timeout=LEASE + 10)
    new = cluster.wait_fenced(successor)["fence"]
    assert new > old
    wait_for(lambda: cluster.served() == {B}, DETECTION + 10, "the successor's failover")
    serial = cluster.bind.primary.soa_serial()
    east.resume()
    wait_for(lambda: any(e.get("event") == "fenced" for e in east.audit()), 10,
             "the thawed leader's write refused")  # fmt: skip
    refused = next(e for e in east.audit() if e.get("event") == "fenced")
    assert refused["fence"] == old and refused["outcome"] == "failed"
    assert f"epoch={new}, newer than ours ({old})" in refused["error"]
    # BIND itself refused east's UPDATE (its record prerequisite fails too by now, and BIND
    # names one; tests/integration/test_provider_rfc2136.py refuses on the fence alone).
    bind_log = cluster.bind.primary.log_since_start().splitlines()
    assert any(f"{cluster.sites['east'].address}#" in line and "(NXRRSET)" in line
               for line in bind_log), "\n".join(bind_log[-20:])  # fmt: skip
    assert cluster.bind.primary.soa_serial() == serial  # nothing of east's landed
    assert cluster.fence() == {f'"epoch={new}"'}
    assert cluster.writes("east") == []


def test_a_leader_cut_off_from_etcd_stops_writing_and_another_leads(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    cluster.start()
    leader = cluster.wait_leader()
    cluster.wait_fenced(leader)
    members = [m.host for m in cluster.etcd.members]
    cluster.sites[leader].cut(members)  # still reaches BIND and the CAs
    cut_at = time.monotonic()
    wait_for(lambda: not cluster.coordination(leader).get("writing_allowed"), LEASE + 3,
             "the cut-off leader stops writing")  # fmt: skip
    assert time.monotonic() - cut_at <= LEASE + 1.5
    successor = cluster.wait_leader(other_than=leader, timeout=LEASE + 10)
    cluster.wait_fenced(successor)
    wait_for(lambda: cluster.coordination(leader).get("etcd") == "unreachable", 10,
             "the alarm in the old leader's status")  # fmt: skip
    cluster.a.kill()
    wait_for(lambda: cluster.served() == {B}, DETECTION + 10, "the new leader's failover")
    wait_for(lambda: cluster.writes(successor), 10, "the new leader's audit")
    assert cluster.writes(leader) == []


def test_one_site_cut_off_from_the_active_ca_moves_nothing(lab: Lab, tmp_path: Path) -> None:
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    cluster.sites[leader].cut([cluster.a.address])  # the leader's own site: the worst case
    own = cluster.daemons[leader]
    wait_for(lambda: own.health()["services"]["acme"]["instances"]["ca-a"]["state"]  # type: ignore[index]
             == "unhealthy", DETECTION + 5, "the leader's site sees ca-a down")  # fmt: skip
    seen = own.health()["updated"]  # type: ignore[index]
    wait_for(lambda: own.health()["updated"] > seen + 3 * DETECTION, 20,  # type: ignore[index]
             "three detection periods more of the leader's decisions")  # fmt: skip
    assert cluster.served() == {A}
    assert not any(cluster.writes(s) for s in cluster.daemons)
    cluster.a.kill()  # now really down: every site agrees
    wait_for(lambda: cluster.served() == {B}, DETECTION + 5, "the flip once ca-a is down")


def test_etcd_without_quorum_stops_every_write_until_it_is_back(lab: Lab, tmp_path: Path) -> None:
    cluster = Cluster(lab, tmp_path)
    cluster.settled()
    e1, e2, _ = cluster.etcd.members
    e1.kill()
    assert cluster.wait_leader() is not None  # one member down: no interruption
    e2.kill()
    for site in cluster.daemons:
        wait_for(lambda s=site: cluster.coordination(s).get("etcd") == "unreachable",  # type: ignore[misc]
                 LEASE + 5, f"{site} raises the alarm")  # fmt: skip
    wait_for(lambda: cluster.leader() is None, LEASE + 2, "nobody may write")
    for site in cluster.daemons:  # what the DnsFailoverEtcdUnreachable/NoLeader alerts read
        wait_for(lambda s=site: f'dnsfailover_coordination_etcd_up{{site="{s}"}} 0.0'  # type: ignore[misc]
                 in cluster.metrics(s), 5, f"{site}'s etcd_up metric")  # fmt: skip
        assert f'dnsfailover_coordination_writing_allowed{{site="{site}"}} 0.0' in cluster.metrics(
            site
        )
    cluster.a.kill()
    north = cluster.daemons["north"]
    wait_for(lambda: north.health()["services"]["acme"]["instances"]["ca-a"]["state"]  # type: ignore[index]
             == "unhealthy", DETECTION + 5, "probes go on")  # fmt: skip
    seen = north.health()["updated"]  # type: ignore[index]
    wait_for(lambda: north.health()["updated"] > seen + 2 * DETECTION, 20,  # type: ignore[index]
             "more probe rounds without etcd")  # fmt: skip
    assert cluster.served() == {A}  # no controller wrote
    cluster.etcd.restart(e1)
    cluster.etcd.restart(e2)
    cluster.wait_leader(timeout=20)
    wait_for(lambda: cluster.served() == {B}, DETECTION + 15, "the failover health calls for")
    wait_for(lambda: any(cluster.writes(s) for s in cluster.daemons), 10, "its audit entry")
    assert sum(len(cluster.writes(s)) for s in cluster.daemons) == 1


def test_operator_commands_from_any_host_are_carried_out_by_the_leader(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    cluster.start()
    leader = cluster.wait_leader()
    cluster.wait_fenced(leader)
    follower = next(s for s in cluster.daemons if s != leader)
    done = cluster.cli(follower, "failover", "acme", "--to", "ca-b", "--reason", "maintenance")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"by {leader}" in done.stdout and "served:" in done.stdout
    assert all(s.rrset(NAME, "CNAME") == {B} for s in cluster.bind.servers)
    agreed = "healthy: 3 of 3 sites agree (quorum 2)"

    def quorum_reasons() -> list[str]:
        quorum = (cluster.daemons[follower].health() or {})["services"]["acme"].get("quorum", {})
        return [str(view.get("reason")) for view in quorum.values()]

    # Every site's report reaches the follower in its own time (the leader needed two).
    wait_for(lambda: any(agreed in reason for reason in quorum_reasons()), 15,
             f"all three sites agreeing at {follower}")  # fmt: skip
    status = cluster.cli(follower, "status")
    assert f"site {follower}, following {leader}" in status.stdout, status.stdout + status.stderr
    assert f"quorum: healthy  {agreed}" in status.stdout
    [entry] = cluster.writes(leader)
    assert (entry["event"], entry["to"], entry["site"]) == ("manual", "ca-b", leader)
    assert entry["fence"] == cluster.coordination(leader)["token"]
    for site in cluster.daemons:  # the pin is everybody's
        wait_for(lambda s=site: cluster.state(s).get("pins", {}).get("acme", {}).get("instance")  # type: ignore[misc]
                 == "ca-b", 10, f"the pin mirrored at {site}")  # fmt: skip
    # Released and drained from a third host: the leader moves the name off the drained one.
    other = next(s for s in cluster.daemons if s not in (leader, follower))
    assert cluster.cli(other, "release", "acme").returncode == 0
    drained = cluster.cli(other, "drain", "ca-b", "--reason", "disk swap")
    assert drained.returncode == 0, drained.stderr
    wait_for(lambda: cluster.served() == {A}, 15, "the name off the drained ca-b")
    assert "ca-b" in cluster.state(leader).get("drains", {})

    # The leader's flips are shared: a successor honours them (hold-down, flip rate).
    def flips() -> list[str]:
        shared = json.loads(cluster.etcd_value("/dnsfailover/state") or "{}")
        return [f["target"] for f in shared.get("flips", {}).get("acme", [])]

    wait_for(lambda: len(flips()) == 2, 10, "the leader's second flip in etcd")
    assert flips() == ["ca-b", "ca-a"]

    def mirrored() -> list[str]:  # into a follower's own state.json (hold-down, flip rate)
        return [f["target"] for f in cluster.state(follower).get("flips", {}).get("acme", [])]

    wait_for(lambda: mirrored() == ["ca-b", "ca-a"], 10, "the flips mirrored at a follower")


def test_three_controllers_while_the_active_ca_flaps(lab: Lab, tmp_path: Path) -> None:
    """The active CA frozen until the name leaves it, thawed until the sites see it healthy
    again, once each way: every real change is one write by the leader, nothing ping-pongs,
    and BIND's serial moved once per write. The soak (the same, over and over for five
    minutes) is `make bench PARTS=coordination`."""
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    serial = cluster.bind.primary.soa_serial()
    assert serial is not None
    pebbles = {A: cluster.a, B: cluster.b}
    freezes = 0
    leading = cluster.daemons[leader]

    def quorum_state(name: str) -> str:
        quorum = (leading.health() or {})["services"]["acme"].get("quorum", {})
        return str(quorum.get(name, {}).get("state"))

    try:
        for _ in range(2):  # ca-a to ca-b, and back
            [active] = cluster.served()
            [other] = {A, B} - {active}
            pebbles[active].freeze()
            freezes += 1
            wait_for(lambda o=other: cluster.served() == {o}, DETECTION + 10,  # type: ignore[misc]
                     "the name off the frozen CA")  # fmt: skip
            pebbles[active].resume()
            thawed = active.split(".")[0]
            wait_for(lambda t=thawed: quorum_state(t) == "healthy", 15,  # type: ignore[misc]
                     "the thawed CA healthy at the quorum again")  # fmt: skip
    finally:
        for pebble in pebbles.values():
            pebble.thaw()

    def applied() -> list[tuple[float, str, str, str]]:
        return sorted((e["time"], e["from"], e["to"], e["site"]) for s in cluster.daemons
                      for e in cluster.writes(s))  # fmt: skip

    # BIND's serial moved once per audited write (a write still in flight is audited soon).
    wait_for(lambda: cluster.bind.primary.soa_serial() == serial + len(applied()), 10,
             "every accepted UPDATE audited as one write")  # fmt: skip
    writes = applied()
    assert len(writes) == freezes  # one write per real change, no more
    assert {site for *_, site in writes} == {leader}  # one writer throughout
    for (t1, f1, to1, _), (t2, f2, to2, _) in itertools.pairwise(writes):
        assert not (to2 == f1 and t2 - t1 < 2), f"ping-pong: {f1}→{to1} then {f2}→{to2}"
    for daemon in cluster.daemons.values():
        assert daemon.running()


def test_a_practice_run_outlives_its_leader_and_the_successor_ends_it_on_time(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    done = cluster.cli(leader, "drill", "acme", "--to", "ca-b", "--for", "12s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.served() == {B}
    others = [s for s in cluster.daemons if s != leader]
    copies = [tmp_path / s / "state" / "practice" / "acme.json" for s in others]
    wait_for(lambda: all(c.exists() for c in copies), 10, "every follower's copy of the run")
    cluster.daemons[leader].kill()  # mid-run
    successor = cluster.wait_leader(other_than=leader, timeout=LEASE + 10)
    wait_for(lambda: cluster.served() == {A}, 12 + LEASE + 10, "the successor's return")
    audit = cluster.daemons[successor].audit
    wait_for(lambda: any(e.get("event") == "practice_ended" for e in audit()), 10, "its end")
    assert any(e.get("event") == "practice_resumed" for e in audit())
    ended = next(e for e in audit() if e.get("event") == "practice_ended")
    assert ended["outcome"] == "SUCCEEDED", ended
    assert ended["timeline"]["back.served"] >= ended["timeline"]["go.written"] + 12


def test_a_drill_asked_on_a_followers_host_is_run_by_the_leader_and_reported_there(
    lab: Lab, tmp_path: Path
) -> None:
    cluster = Cluster(lab, tmp_path)
    leader = cluster.settled()
    follower = next(s for s in cluster.daemons if s != leader)
    done = cluster.cli(follower, "drill", "acme", "--to", "ca-b", "--for", "3s", "--wait",
                       "--reason", "asked in another site")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # SUCCEEDED, read on the follower
    assert "SUCCEEDED" in done.stdout and "back.served" in done.stdout
    assert cluster.served() == {A}

    def moves(site: str) -> list[tuple[str, str]]:
        return [(e["to"], e["outcome"]) for e in cluster.daemons[site].audit()
                if e.get("event") in ("practice", "practice_return")]  # fmt: skip

    assert moves(leader) == [("ca-b", "applied"), ("ca-a", "applied")]  # the leader wrote both
    assert not any(moves(s) for s in cluster.daemons if s != leader)
    asked = [e for e in cluster.daemons[follower].audit() if e.get("event") == "drill_requested"]
    assert len(asked) == 1 and asked[0]["site"] == follower
    report = cluster.cli(follower, "drill", "acme", "--report")
    assert "SUCCEEDED" in report.stdout, report.stdout + report.stderr
