"""Reliability drills: faults, crashes, races and hostile input against the lab's real servers.

Every drill checks three things: the process keeps working (or exits clearly), the record ends
in a correct state (old or new, never half or foreign), and the audit log and state file stay
valid. And no secret appears anywhere.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dnsfailover.config.models import Rfc2136Settings as Settings
from dnsfailover.controller.oneshot import OneShot
from dnsfailover.controller.runtime import Runtime
from dnsfailover.controller.state import StateStore
from dnsfailover.health import InstanceHealth, State
from dnsfailover.providers.base import Receipt
from dnsfailover.providers.rfc2136 import Rfc2136Provider
from dnsfailover.rrset import Change, Fence
from lab import Lab
from lab.bind import BindPair
from lab.coordination import is_stopped
from lab.net import free_port
from lab.pebble import Pebble
from lab.scenario import NAME, DaemonProcess, wait_for, write_config
from tests.prerequisites import missing

A, B = "ca-a.example.test.", "ca-b.example.test."
FIRST_SERIAL = 2026010100


@dataclass
class Drill:
    lab: Lab
    a: Pebble
    b: Pebble
    bind: BindPair
    config: Path
    metrics_port: int

    def serves(self, target: str, servers: Any = None) -> bool:
        return all(s.rrset(NAME, "CNAME") == {target} for s in servers or self.bind.servers)

    def daemon(self, env: dict[str, str] | None = None) -> DaemonProcess:
        return self.lab.daemon(self.config, env=env)

    def settle(self, daemon: DaemonProcess) -> None:
        wait_for(lambda: all(i["state"] == "healthy" for i in
                             daemon.health()["services"]["acme"]["instances"].values()), 15,
                 "both instances healthy")  # fmt: skip

    def writes(self) -> int:
        """How many updates the primary accepted (each bumps the SOA serial by one)."""
        serial = self.bind.primary.soa_serial()
        assert serial is not None
        return serial - FIRST_SERIAL

    def metric(self, name: str) -> float | None:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def assert_valid_files(self, state_dir: Path) -> None:
        """state.json parses (when present); every audit line but a torn last one parses."""
        state = StateStore(state_dir)
        state.load()
        entries, problems = state.read_audit()
        assert all(isinstance(e, dict) for e in entries)
        assert len(problems) <= 1, problems

    def assert_no_secret(self, daemon: DaemonProcess) -> None:
        secret = self.bind.update_key.secret
        for path in [daemon.log_path, *daemon.state_dir.glob("*")]:
            try:
                text = path.read_text(errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                continue  # a running daemon's temporary file, renamed meanwhile
            assert secret not in text, f"secret in {path}"


@pytest.fixture
def drill(lab: Lab, tmp_path: Path) -> Iterator[Drill]:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    port = free_port()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          metrics_listen=f"127.0.0.1:{port}")  # fmt: skip
    yield Drill(lab, a, b, bind, config, port)


# ----------------------------------------------------------------------------- 1


def test_dns_primary_down_during_a_failover(
    drill: Drill, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = drill.daemon()
    drill.settle(daemon)
    drill.bind.primary.stop()
    drill.a.kill()
    wait_for(lambda: (daemon.health()["services"]["acme"]["last"] or {}).get("pending"), 15,
             "the pending change reported")  # fmt: skip
    assert drill.metric("dnsfailover_pending_change") == 1
    from dnsfailover.cli.main import main

    assert main(["status", "-c", str(drill.config)]) == 0
    assert "PENDING (not written yet, retrying): acme.example.test. CNAME: ca-a" in (
        capsys.readouterr().out
    )
    # It keeps trying, backing off (the backoff's rule: tests/test_machine.py, on a simulated
    # clock): one more failed attempt, and it runs on.
    attempts = daemon.log_count("reconcile_failed")
    wait_for(lambda: daemon.log_count("reconcile_failed") > attempts, 20, "one more attempt")
    assert daemon.running()
    drill.bind.primary.start()
    back = time.monotonic()
    wait_for(lambda: drill.serves(B), 40, "the failover once BIND is back")
    took = time.monotonic() - back
    assert took <= 30 + 3  # within one retry interval (backoff is capped at 30 s)
    wait_for(lambda: drill.metric("dnsfailover_pending_change") == 0, 10, "pending cleared")
    assert drill.writes() == 1
    drill.assert_valid_files(daemon.state_dir)
    drill.assert_no_secret(daemon)


def test_dns_primary_down_and_the_ca_recovers_meanwhile(drill: Drill) -> None:
    daemon = drill.daemon()
    drill.settle(daemon)
    drill.bind.primary.stop()
    drill.a.kill()
    wait_for(lambda: (daemon.health()["services"]["acme"]["last"] or {}).get("pending"), 15,
             "the pending change reported")  # fmt: skip
    drill.a.start()
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"]
             == "healthy", 15, "ca-a healthy again")  # fmt: skip
    drill.bind.primary.start()

    def last() -> dict[str, Any]:
        return daemon.health()["services"]["acme"]["last"] or {"error": "no decision yet"}

    wait_for(lambda: last()["error"] is None, 40, "a decision on a record read once BIND is back")
    assert last()["event"] == "keep", last()
    daemon.wait_cycles(2)
    assert drill.serves(A)
    assert drill.writes() == 0
    assert not any(e["event"] == "failover" for e in daemon.audit())
    drill.assert_valid_files(daemon.state_dir)


# ----------------------------------------------------------------------------- 2


@pytest.mark.parametrize("point", ["before_write", "after_write", "state_write"])
def test_crash_at_every_point_converges_without_a_second_flip(drill: Drill, point: str) -> None:
    crashing = drill.daemon(env={"DNSFAILOVER_CRASHPOINT": point})
    drill.settle(crashing)
    drill.a.kill()
    wait_for(lambda: not crashing.running(), 15, f"the crash at {point}")
    assert crashing.proc is not None and crashing.proc.returncode == -signal.SIGKILL
    expected_now = B if point == "after_write" else A
    assert drill.bind.primary.rrset(NAME, "CNAME") == {expected_now}
    with open(crashing.state_dir / "audit.jsonl", "a") as audit:
        audit.write('{"time": 1, "event": "torn')  # a torn last line, as a crash mid-append
    # a temporary file, as a crash in the middle of an atomic write leaves one
    (crashing.state_dir / ".state.json.crashed").write_text('{"flips": ')
    leftovers = set(crashing.state_dir.glob(".*.json.*"))
    restarted = drill.daemon()
    wait_for(lambda: drill.serves(B), 15, "convergence after the restart")
    wait_for(lambda: restarted.health()["services"]["acme"]["instances"]["ca-b"]["state"]
             == "healthy", 15, "the restarted daemon sees ca-b healthy")  # fmt: skip
    restarted.wait_cycles(2)  # it decided from a settled view, then cycled twice more
    assert drill.serves(B)
    assert drill.writes() == 1  # exactly one flip, whatever the crash point
    # ... and hold-down knows about it: the flip is in state.json even when the crash came
    # between the write and its record (the intent recorded before it is settled at restart).
    state = StateStore(restarted.state_dir)
    wait_for(lambda: len(state.load().flips.get("acme", ())) == 1, 5, "the flip recorded")
    assert state.load().flips["acme"][0].target == "ca-b" and state.load().intents == {}
    assert "audit_torn_line" in restarted.log_tail(200)
    # leftovers cleaned at start (a running daemon's own temporary files come and go)
    assert not leftovers & set(restarted.state_dir.glob(".*.json.*"))
    assert "state_leftover_removed file=.state.json.crashed" in restarted.log_since_start()
    drill.assert_valid_files(restarted.state_dir)


# ----------------------------------------------------------------------------- 3


class RacingProvider(Rfc2136Provider):
    """Lets another client (nsupdate) change the record between our read and our write."""

    race_to: str = ""

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        if self.race_to:
            nsupdate(self.settings.port, self.key_path, self.race_to)
            self.race_to = ""
        return super()._write(change, fence)

    key_path = Path()


def nsupdate(port: int, key: Path, target: str) -> None:
    script = (f"server 127.0.0.1 {port}\nzone example.test.\nupdate delete {NAME} CNAME\n"
              f"update add {NAME} 60 CNAME {target}\nsend\n")  # fmt: skip
    done = subprocess.run(["nsupdate", "-k", str(key)], input=script, text=True,
                          capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def _health(a: State, b: State) -> dict[str, InstanceHealth]:
    from types import MappingProxyType

    return {"ca-a": InstanceHealth("ca-a", a, 0.0, MappingProxyType({})),
            "ca-b": InstanceHealth("ca-b", b, 0.0, MappingProxyType({}))}  # fmt: skip


@pytest.mark.parametrize(
    ("race_to", "outcome"),
    [(B, "kept"), ("elsewhere.example.test.", "drift")],
    ids=["another_writer_did_our_move", "another_writer_set_a_foreign_value"],
)
def test_a_concurrent_writer_is_a_conflict_and_nothing_is_overwritten(
    drill: Drill, tmp_path: Path, race_to: str, outcome: str
) -> None:
    from dnsfailover.config import load_config

    config = load_config(drill.config).config
    settings = config.providers["bind"]
    assert isinstance(settings, Settings)
    provider = RacingProvider("bind", settings)
    provider.key_path = drill.bind.update_key.path
    provider.race_to = race_to
    store = StateStore(tmp_path / "state")
    runtime = Runtime(config, {"bind": provider}, [])
    with OneShot(runtime, store, {"acme": _health(State.UNHEALTHY, State.HEALTHY)}) as once:
        report = once.change("acme")
    assert report.conflicts == 1
    assert not report.applied and report.error is None
    assert drill.bind.primary.rrset(NAME, "CNAME") == {race_to}  # theirs, not overwritten
    assert drill.writes() == 1  # only nsupdate's
    assert report.drift is (outcome == "drift")
    drill.assert_valid_files(store.directory)


# ----------------------------------------------------------------------------- 4


def test_two_controllers_never_ping_pong(drill: Drill, tmp_path: Path) -> None:
    """Two daemons, one config, one BIND, no coordination, while the CAs fail in turn. Each
    change is made the closest race there is: both daemons decide it from the same record and
    are held just before their write (a crash point that stops the process), then one writes
    and the other's compare-and-swap is refused. Four changes, each daemon first twice: four
    writes, four conflicts, and no move back when the failed CA returns."""
    arms = [tmp_path / "arm-first", tmp_path / "arm-second"]
    second_config = tmp_path / "second.yaml"
    document = yaml.safe_load(drill.config.read_text())
    document["state_dir"] = str(tmp_path / "second-state")
    document["control_socket"] = str(tmp_path / "second.control")
    document.pop("metrics_listen")
    second_config.write_text(yaml.safe_dump(document))
    stop_before_write = {"DNSFAILOVER_CRASHPOINT": "before_write:stop"}
    daemons = [
        drill.lab.daemon(config, env={**stop_before_write, "DNSFAILOVER_CRASHPOINT_IF": str(arm)})
        for config, arm in zip([drill.config, second_config], arms, strict=True)
    ]
    for daemon in daemons:
        drill.settle(daemon)
    down, up = drill.a, drill.b
    for change in range(4):
        first, second = daemons if change % 2 == 0 else daemons[::-1]
        _race(drill, arms, (first, second), down, up, change // 2 + 1)
        down, up = up, down
    for daemon in daemons:
        daemon.wait_cycles(2)  # both decided on the last recovery, then cycled twice more: sticky
    assert drill.writes() == 4  # every accepted update is one of these, audited
    moves = sorted((t, d, f, to) for d in (0, 1) for t, f, to in applied(daemons[d]))
    assert [move[1:] for move in moves] == [
        (0, "ca-a", "ca-b"), (1, "ca-b", "ca-a"), (0, "ca-a", "ca-b"), (1, "ca-b", "ca-a")
    ]  # fmt: skip
    assert [conflicts(daemon) for daemon in daemons] == [2, 2]
    for daemon in daemons:
        assert daemon.running()
        drill.assert_valid_files(daemon.state_dir)


def _race(
    drill: Drill,
    arms: list[Path],
    daemons: tuple[DaemonProcess, DaemonProcess],
    down: Pebble,
    up: Pebble,
    nth: int,
) -> None:
    """`down` fails; both daemons stop just before writing the same move; `first` writes it
    (its `nth` write), then `second` tries and conflicts (its `nth` conflict); `down` returns."""
    first, second = daemons
    for arm in arms:
        arm.touch()
    down.kill()
    for daemon in daemons:  # both decided the move from the same record; neither wrote
        is_stopped(daemon.pid)
    for arm in arms:
        arm.unlink()
    first.resume()
    wait_for(lambda: drill.serves(f"{up.name}.example.test."), 10, "the first one's write")
    wait_for(lambda: len(applied(first)) == nth, 10, "the first one's audit entry")
    second.resume()
    wait_for(lambda: conflicts(second) == nth, 10, "the second one's conflict")
    down.start()
    for daemon in daemons:
        wait_for(lambda: daemon.health()["services"]["acme"]["instances"][down.name]["state"]  # noqa: B023
                 == "healthy", 15, f"{down.name} healthy again")  # fmt: skip


def applied(daemon: DaemonProcess) -> list[tuple[float, str, str]]:
    return [(e["time"], e["from"], e["to"]) for e in daemon.audit()
            if e["event"] == "failover" and e["outcome"] == "applied"]  # fmt: skip


def conflicts(daemon: DaemonProcess) -> int:
    return sum(e.get("conflicts", 0) for e in daemon.audit())


# ----------------------------------------------------------------------------- 6


def test_sighup_with_a_missing_tsig_file_keeps_the_old_config(drill: Drill, tmp_path: Path) -> None:
    key = tmp_path / "tsig.key"
    key.write_bytes(drill.bind.update_key.path.read_bytes())
    text = drill.config.read_text().replace(str(drill.bind.update_key.path), str(key))
    drill.config.write_text(text)
    daemon = drill.daemon()
    drill.settle(daemon)
    key.unlink()
    daemon.reload()
    wait_for(lambda: "reload_failed" in daemon.log_tail(300), 10, "the refused reload")
    assert "tsig.key" in daemon.log_tail(300)
    drill.a.kill()
    wait_for(lambda: drill.serves(B), 10, "failover on the old config and key")
    drill.assert_no_secret(daemon)


def test_a_tsig_secret_bind_rejects_is_an_auth_error_without_a_retry_storm(drill: Drill) -> None:
    daemon = drill.daemon(env={"WRONG_TSIG": "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0="})
    drill.settle(daemon)
    document = yaml.safe_load(drill.config.read_text())
    document["providers"]["bind"]["tsig"] = {"name": "ddns-key.", "secret_env": "WRONG_TSIG"}
    drill.config.write_text(yaml.safe_dump(document))
    daemon.reload()
    wait_for(lambda: "reload_done" in daemon.log_tail(300), 10, "the reload")
    drill.a.kill()
    wait_for(lambda: any("rejected TSIG key" in (e.get("error") or "") for e in daemon.audit()),
             10, "the authentication error")  # fmt: skip
    # No storm: over the next six ticks (health.json rewritten at each), backing off from 1 s
    # (1, 2, 4 s ...) leaves room for three attempts at most; one a tick would be six. The
    # doubling itself is tests/test_machine.py's, on a simulated clock.
    attempts = daemon.log_count("reconcile_failed")
    daemon.wait_cycles(6)
    assert daemon.log_count("reconcile_failed") - attempts <= 3, daemon.log_since_start()
    assert drill.serves(A) and drill.writes() == 0
    drill.assert_no_secret(daemon)


# ----------------------------------------------------------------------------- 7


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs ({done.stderr.strip()})", "run as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _use_state_dir(drill: Drill, state_dir: Path) -> None:
    document = yaml.safe_load(drill.config.read_text())
    document["state_dir"] = str(state_dir)
    drill.config.write_text(yaml.safe_dump(document))


def test_read_only_state_directory_blocks_writes_until_it_is_writable(
    drill: Drill, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "ro-state", "4m") as state_dir:
        _use_state_dir(drill, state_dir)
        daemon = drill.daemon()
        drill.settle(daemon)
        subprocess.run(["mount", "-o", "remount,ro", str(state_dir)], check=True)
        drill.a.kill()
        wait_for(lambda: "Read-only file system" in daemon.log_tail(300), 10, "the clear error")
        wait_for(lambda: daemon.log_count("reconcile_failed") >= 2, 15,
                 "a second attempt, refused as well")  # fmt: skip
        assert drill.serves(A) and drill.writes() == 0  # no change it could not record
        assert daemon.running()
        subprocess.run(["mount", "-o", "remount,rw", str(state_dir)], check=True)
        wait_for(lambda: drill.serves(B), 40, "the failover once the state is writable")
        assert drill.writes() == 1
        drill.assert_valid_files(state_dir)


def test_full_state_directory_blocks_writes_until_there_is_room(
    drill: Drill, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "full-state", "1m") as state_dir:
        _use_state_dir(drill, state_dir)
        daemon = drill.daemon()
        drill.settle(daemon)
        filler = state_dir / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k", "count=64"],
                       capture_output=True, check=False)  # fmt: skip
        drill.a.kill()
        wait_for(lambda: "No space left on device" in daemon.log_tail(300), 10, "the clear error")
        assert drill.serves(A) and drill.writes() == 0
        filler.unlink()
        wait_for(lambda: drill.serves(B), 40, "the failover once there is room")
        assert drill.writes() == 1
        drill.assert_valid_files(state_dir)


def test_state_directory_deleted_while_running_is_recreated(drill: Drill) -> None:
    daemon = drill.daemon()
    drill.settle(daemon)
    import shutil

    # Gone at once, as the daemon sees it (removing a directory it writes into, file by file,
    # races with its writes); then removed for good.
    gone = daemon.state_dir.with_name("state-deleted")
    daemon.state_dir.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)
    drill.a.kill()
    wait_for(lambda: drill.serves(B), 15, "failover with a recreated state directory")
    path = daemon.state_dir / "state.json"
    wait_for(lambda: path.exists() and "acme" in json.loads(path.read_text())["flips"], 5,
             "state.json recreated with the flip")  # fmt: skip
    state = json.loads(path.read_text())
    assert [f["target"] for f in state["flips"]["acme"]] == ["ca-b"]
    drill.assert_valid_files(daemon.state_dir)


# ----------------------------------------------------------------------------- 8


def test_dns_answers_that_are_garbage_give_typed_errors_in_time(lab: Lab) -> None:
    """A UDP 'DNS server' answering garbage, truncated messages and wrong ids."""
    import socket
    import threading

    from dnsfailover.errors import ProviderError

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    answers = [b"\x00", b"garbage that is not dns at all", b"\xab\xcd" + b"\x81\x80" + b"\x00" * 8]
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.1)
        index = 0
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = answers[index % len(answers)]
            if index % len(answers) == 2:
                reply = bytes([data[0] ^ 0xFF, data[1]]) + reply[2:]  # a wrong id
            sock.sendto(reply, peer)
            index += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        settings = Settings.model_validate({"type": "rfc2136", "server": "127.0.0.1",
                                            "port": port, "zone": "example.test.",
                                            "timeout": "500ms"})  # fmt: skip
        provider = Rfc2136Provider("garbage", settings)
        for _ in range(len(answers)):
            started = time.monotonic()
            with pytest.raises(ProviderError):
                provider.read(NAME, "CNAME")
            assert time.monotonic() - started < 0.5 + 0.3
        with pytest.raises(ProviderError):
            provider.wait(Receipt(Change(None, _rr(A)), "1"), timeout=0.2)
    finally:
        stop.set()
        thread.join()
        sock.close()


def _rr(target: str) -> Any:
    from dnsfailover.rrset import RRset

    return RRset.of(NAME, "CNAME", 60, [target])
