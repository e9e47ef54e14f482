"""The operator's door, walked as on a host: the daemon runs as an unprivileged user (as under
the unit's DynamicUser=), the operator runs the CLI as root; the CLI goes through the control
socket, the daemon writes its own files, and what the CLI prints is the daemon's outcome."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnsfailover.controller.state import StateStore
from lab import Lab
from lab.bind import BindPair
from lab.scenario import NAME, DaemonProcess, wait_for, write_config
from tests.offline_config import offline_config

USER = "daemon"  # Debian's uid 1: any user but root and nobody
A, B = "ca-a.example.test.", "ca-b.example.test."


def cli(config: Path, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dnsfailover", *argv, "-c", str(config)]
    if user is not None:
        found = pwd.getpwnam(user)
        command = ["setpriv", f"--reuid={found.pw_uid}", f"--regid={found.pw_gid}",
                   "--clear-groups", *command]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)


def give(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)


def reachable(path: Path, top: Path) -> None:
    """Let every user traverse the directories from `top` down to `path` (the lab's own are
    private to root)."""
    for directory in [top, *reversed(path.parents)]:
        if directory == top or top in directory.parents:
            directory.chmod(directory.stat().st_mode | 0o055)


@dataclass
class Host:
    lab: Lab
    bind: BindPair
    config: Path
    state: Path
    socket: Path
    uid: int

    def daemon(self) -> DaemonProcess:
        return self.lab.daemon(self.config, user=USER)

    def serves(self, target: str) -> bool:
        return all(s.rrset(NAME, "CNAME") == {target} for s in self.bind.servers)

    @staticmethod
    def settled(daemon: DaemonProcess) -> bool:
        acme = (daemon.health() or {})["services"]["acme"]
        states = {h["state"] for h in acme["instances"].values()}
        return bool(acme["active"] == "ca-a" and states == {"healthy"})

    def owners(self) -> set[int]:
        return {p.stat().st_uid for p in [self.state, *self.state.iterdir()]}


@pytest.fixture
def host(lab: Lab) -> Host:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    uid = pwd.getpwnam(USER).pw_uid
    home = lab.directory / "host"
    home.mkdir()
    for needed in (lab.tls.cert_path, bind.update_key.path, home):
        reachable(needed, lab.directory)
    give(bind.update_key.path, uid)  # its credential, as LoadCredential= hands it over
    state, run = home / "state", home / "run"
    for directory in (state, run):  # StateDirectory= and RuntimeDirectory=
        directory.mkdir(mode=0o700 if directory == state else 0o755)
        give(directory, uid)
    config = write_config(home / "config.yaml", lab, bind, [a, b], state_dir=str(state),
                          control_socket=str(run / "control"))  # fmt: skip
    config.chmod(0o644)
    return Host(lab, bind, config, state, run / "control", uid)


def test_root_drains_fails_over_and_releases_through_an_unprivileged_daemon(host: Host) -> None:
    daemon = host.daemon()
    wait_for(lambda: host.settled(daemon), 15, "both instances healthy, the name on ca-a")
    assert host.socket.stat().st_uid == host.uid and host.socket.stat().st_mode & 0o777 == 0o660

    drained = cli(host.config, "drain", "ca-a", "--reason", "kernel update")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "ca-a drained (kernel update); services: acme" in drained.stdout
    # The daemon's outcome: its change written and served before the CLI returned.
    assert "-> ca-b.example.test. — ca-a is drained" in drained.stdout, drained.stdout
    assert "propagation" in drained.stdout and "clients get through" in drained.stdout
    assert host.serves(B)
    assert cli(host.config, "undrain", "ca-a").returncode == 0

    failover = cli(host.config, "failover", "acme", "--to", "ca-a", "--reason", "back home")
    assert failover.returncode == 0, failover.stdout + failover.stderr
    assert "propagation" in failover.stdout and "clients get through" in failover.stdout
    assert "acme is pinned to ca-a" in failover.stdout
    assert host.serves(A)
    unhealthy = cli(host.config, "failover", "acme", "--to", "nope")
    assert unhealthy.returncode == 2 and "no instance 'nope'" in unhealthy.stderr

    released = cli(host.config, "release", "acme")
    assert released.returncode == 0 and "pin to ca-a released" in released.stdout
    status = cli(host.config, "status")
    assert status.returncode == 0 and f"daemon: running, pid {daemon.pid}" in status.stdout

    assert host.owners() == {host.uid}  # every state file is still the daemon's
    events = [(e["event"], e.get("to") or e.get("instance")) for e in daemon.audit()]
    for wanted in [("drain", "ca-a"), ("failover", "ca-b"), ("undrain", "ca-a"),
                   ("manual", "ca-a"), ("pin", "ca-a"), ("release", None)]:  # fmt: skip
        assert wanted in events, events
    assert daemon.running()


def test_a_peer_neither_root_nor_in_the_group_is_refused(host: Host) -> None:
    daemon = host.daemon()
    refused = cli(host.config, "drain", "ca-a", "--reason", "x", user="nobody")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "permission denied: run as root" in refused.stderr  # the socket's mode: 0660
    host.socket.chmod(0o666)  # past the file's mode: the daemon's own check (SO_PEERCRED)
    refused = cli(host.config, "drain", "ca-a", "--reason", "x", user="nobody")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "uid 65534 may not use the control socket" in refused.stderr
    wait_for(lambda: "control_refused" in daemon.log_since_start(), 5, "the refusal logged")
    assert "ca-a" not in StateStore(host.state).load().drains
    assert daemon.running()
    assert cli(host.config, "status").returncode == 0  # root still gets in


@pytest.mark.parametrize(
    "argv",
    [
        ("drain", "a", "--reason", "kernel update"),
        ("undrain", "a"),
        ("release", "acme"),
        ("failover", "acme", "--to", "b", "--force"),
        ("run", "--once"),
    ],
)
def test_without_a_daemon_root_refuses_to_write_into_another_users_state_dir(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    config = offline_config(tmp_path, top=f"control_socket: {tmp_path / 'control'}")
    state = tmp_path / "state"
    state.mkdir()
    give(state, pwd.getpwnam(USER).pw_uid)
    done = cli(config, *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"belongs to user '{USER}'" in done.stderr and "systemd-run" in done.stderr
    assert list(state.iterdir()) == []  # nothing written


def test_with_coordination_and_no_daemon_the_cli_says_where_to_run(tmp_path: Path) -> None:
    top = (f"control_socket: {tmp_path / 'control'}\ncoordination: {{site: east, sites: [east], "
           "etcd: {endpoints: ['http://127.0.0.1:9']}}")  # fmt: skip
    done = cli(offline_config(tmp_path, top=top), "drain", "a", "--reason", "x")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "run it on a host whose dnsfailover daemon runs" in done.stderr
