"""Several controllers, one writer: drills against real etcd, BIND and Pebble, with each
controller in a network-namespace site of its own (lab/coordination.py, lab/sites.py).

Every partition is a packet filter inside one site; nothing in dnsfailover is switched.
"""

from __future__ import annotations

from pathlib import Path

from lab import Lab
from lab.coordination import A, B, Cluster
from lab.scenario import wait_for

DETECTION = 2 * 1.0 + 0.8  # fall 2 × interval 1 s + the probe's timeout
LEASE = 2.0


def test_a_follower_completes_the_failover_when_the_leader_dies(lab: Lab, tmp_path: Path) -> None:
    cluster = Cluster(lab, tmp_path)
    cluster.start()
    leader = cluster.wait_leader()
    cluster.wait_fenced(leader)
    for site in cluster.daemons:
        cluster.wait_reporting(site)
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
