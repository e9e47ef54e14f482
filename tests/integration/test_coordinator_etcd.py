"""The coordinator and its etcd client against a real 3-member etcd cluster (lab/etcd.py).

Rounds are driven by hand (`step()`), on a clock the test moves, so each case says exactly
which renewals happened: what the thread does on its own, one round at a time.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dnsfailover.config.models import Coordination
from dnsfailover.controller.shared import SharedStore
from dnsfailover.coordination.coordinator import Coordinator
from dnsfailover.coordination.etcd import Etcd, EtcdError
from dnsfailover.errors import DnsFailoverError
from lab import Lab
from lab.etcd import EtcdCluster
from lab.scenario import wait_for


@pytest.fixture
def etcd(lab: Lab) -> EtcdCluster:
    return lab.etcd()


def settings(etcd: EtcdCluster, site: str, **etcd_overrides: str) -> Coordination:
    return Coordination.model_validate({
        "site": site, "sites": ["east", "west", "north"],
        "etcd": {"endpoints": etcd.endpoints, "lease_ttl": "2s", "timeout": "300ms",
                 **etcd_overrides},
    })  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_one_leader_its_token_and_every_sites_report(etcd: EtcdCluster) -> None:
    east, west = Coordinator(settings(etcd, "east")), Coordinator(settings(etcd, "west"))
    east.publish('{"site": "east"}')
    east.step()
    west.publish('{"site": "west"}')
    west.step()
    east.step()
    e, w = east.view(), west.view()
    assert (e.leading, w.leading) == (True, False)
    assert e.leader == w.leader == "east" and e.token == w.token and e.token
    assert e.may_write(time.monotonic()) and not w.may_write(time.monotonic())
    assert set(e.reports) == {"east", "west"}
    east.stop()  # revokes the lease: west leads at its next round, with a newer token
    west.step()
    assert west.view().leading and west.view().token > e.token  # type: ignore[operator]
    assert set(west.view().reports) == {"west"}
    west.stop()


def test_the_leader_stops_writing_at_the_deadline_and_a_follower_takes_over(
    etcd: EtcdCluster,
) -> None:
    clock = Clock()
    east = Coordinator(settings(etcd, "east", renew_deadline="1s"), clock=clock)
    east.step()
    assert east.may_write()
    clock.offset += 1.01  # no renewal for longer than the deadline (a starved thread, etcd away)
    assert not east.may_write()  # whether or not the lease still lives
    west = Coordinator(settings(etcd, "west"))
    wait_for(
        lambda: (west.step(), west.view().leading)[1], 5, "west leads once east's lease is gone"
    )
    east.step()  # east learns it lost: its lease expired, it regrants and follows
    assert not east.view().leading and east.view().leader == "west"
    west.stop()
    east.stop()


def test_etcd_without_quorum_is_an_alarm_not_an_exit(etcd: EtcdCluster) -> None:
    east = Coordinator(settings(etcd, "east"))
    changes: list[bool] = []
    east.on_change = lambda: changes.append(east.view().etcd_ok)
    east.step()
    assert east.view().etcd_ok and east.view().leading
    etcd.members[0].kill()
    etcd.members[1].kill()
    started = time.monotonic()
    east.step()
    assert time.monotonic() - started < 3 * 4 * 0.3 + 1  # bounded by the request timeouts
    view = east.view()
    assert not view.etcd_ok and view.error and "etcd" in view.error
    assert changes[-1] is False
    wait_for(lambda: (east.step(), not east.may_write())[1], 5, "writing stops without etcd")
    etcd.restart(etcd.members[0])
    etcd.restart(etcd.members[1])
    wait_for(lambda: (east.step(), east.view().etcd_ok and east.view().leading)[1], 20,
             "east leads again once etcd is back")  # fmt: skip
    east.stop()


def test_compare_and_swap_updates_and_clear_errors(etcd: EtcdCluster) -> None:
    client = Etcd(settings(etcd, "east").etcd)
    assert client.update("/t/doc", lambda old: (old or "") + "a") == "a"
    assert client.update("/t/doc", lambda old: (old or "") + "b") == "ab"
    assert client.replace("/t/doc", "stale", mod_revision=1) is False
    for member in etcd.members:
        member.kill()
    with pytest.raises(EtcdError, match=r"etcd get: http://127\.0\.0\.1:\d+: Connection"):
        client.get("/t/doc")
    client.close()


def test_mutual_tls_with_a_client_certificate(lab: Lab) -> None:
    cluster = lab.etcd(tls=True)
    assert cluster.client_cert is not None
    good = settings(cluster, "east", ca_bundle=str(lab.tls.cert_path),
                    cert_file=str(cluster.client_cert.cert),
                    key_file=str(cluster.client_cert.key))  # fmt: skip
    client = Etcd(good.etcd)
    client.put("/t/tls", "ok")
    assert client.get("/t/tls").value == "ok"  # type: ignore[union-attr]
    client.close()
    anonymous = Etcd(settings(cluster, "east", ca_bundle=str(lab.tls.cert_path)).etcd)
    with pytest.raises(EtcdError, match="etcd get: https://127.0.0.1:"):
        anonymous.get("/t/tls")  # no client certificate: the handshake fails
    anonymous.close()


def test_an_etcd_user_with_a_password_file(lab: Lab, tmp_path: Path) -> None:
    cluster = lab.etcd()

    def etcdctl(*argv: str) -> None:
        done = subprocess.run(["etcdctl", "--endpoints", cluster.endpoints[0], *argv],
                              env={"ETCDCTL_API": "3", "PATH": os.environ["PATH"]},
                              capture_output=True, text=True, check=False, timeout=10)  # fmt: skip
        assert done.returncode == 0, done.stderr

    etcdctl("user", "add", "root", "--new-user-password", "root-secret-x1")
    etcdctl("user", "grant-role", "root", "root")
    etcdctl("auth", "enable")
    password = tmp_path / "etcd-password"
    password.write_text("root-secret-x1\n")
    # etcd checks a password with bcrypt: on two busy cores that can take longer than 300 ms
    # (1 s stays under the lease's renew deadline)
    auth = {"username": "root", "password_file": str(password), "timeout": "1s"}
    good = Etcd(settings(cluster, "east", **auth).etcd)
    good.put("/t/auth", "ok")
    assert good.get("/t/auth").value == "ok"  # type: ignore[union-attr]
    good.close()
    password.write_text("wrong-password-y2\n")
    wrong = Etcd(settings(cluster, "east", **auth).etcd)
    with pytest.raises(EtcdError) as refused:
        wrong.get("/t/auth")
    assert "authentication failed" in str(refused.value)
    assert "wrong-password-y2" not in str(refused.value)  # the secret is never in an error
    wrong.close()
    anonymous = Etcd(settings(cluster, "east", timeout="1s").etcd)
    with pytest.raises(EtcdError, match="user name is empty|permission denied"):
        anonymous.get("/t/auth")
    anonymous.close()


def test_a_failover_request_nobody_carries_out_is_withdrawn(
    etcd: EtcdCluster, tmp_path: Path
) -> None:
    from dnsfailover.controller.journal import Journal
    from dnsfailover.controller.operator import Operator, SharedOverrides
    from dnsfailover.controller.state import StateStore

    shared = SharedStore(settings(etcd, "east"))
    operator = Operator(SharedOverrides(shared), Journal(StateStore(tmp_path)), "east")
    operator.pin("other", "ca-a", "kept")  # another service's pin stays
    request = shared.request_failover("acme", "ca-b", "maintenance")
    assert shared.load().requests["acme"] == request
    assert shared.load().state.pins["acme"].instance == "ca-b"
    with pytest.raises(DnsFailoverError, match="no leader carried out the failover"):
        shared.wait_result("acme", request, timeout=0.5)
    left = shared.load()
    assert left.requests == {} and set(left.state.pins) == {"other"}
    shared.close()


def test_a_shared_document_that_does_not_parse_does_not_stop_the_rounds(
    etcd: EtcdCluster,
) -> None:
    from dnsfailover.controller.shared import edit, with_flip
    from dnsfailover.controller.state import Flip

    east = Coordinator(settings(etcd, "east"))
    east.etcd.put(east.state_key, "{garbage")
    east.submit(lambda client: client.update(east.state_key,
                                             edit(with_flip("acme", Flip(1.0, "a", "b", "x")))))  # fmt: skip
    east.step()
    view = east.view()
    assert view.etcd_ok and view.leading and view.shared == "{garbage"  # dropped, not stuck
    assert east._actions == []
    east.stop()
