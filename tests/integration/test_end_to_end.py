"""The daemon end to end: two Pebble CAs, BIND primary + secondary, RFC 2136 (the lab)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dnsfailover.cli.main import main
from lab import Lab
from lab.bind import BindPair
from lab.pebble import Pebble
from lab.scenario import NAME, DaemonProcess, wait_for, write_config

A, B = "ca-a.example.test.", "ca-b.example.test."


@dataclass
class Scene:
    lab: Lab
    a: Pebble
    b: Pebble
    bind: BindPair
    config: Path

    def serves(self, target: str) -> bool:
        return all(s.rrset(NAME, "CNAME") == {target} for s in self.bind.servers)

    def rewrite(self, service: dict[str, Any] | None = None, **top: Any) -> None:
        write_config(self.config, self.lab, self.bind, [self.a, self.b], service, **top)

    def daemon(self, *extra: str) -> DaemonProcess:
        return self.lab.daemon(self.config, *extra)


@pytest.fixture
def scene(lab: Lab, tmp_path: Path) -> Iterator[Scene]:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b])
    yield Scene(lab, a, b, bind, config)


def events(daemon: DaemonProcess) -> list[tuple[str, str | None]]:
    return [(e["event"], e.get("to")) for e in daemon.audit()]


def settled(daemon: DaemonProcess) -> None:
    """Both instances known healthy: the daemon decides from a settled view now."""
    wait_for(lambda: all(i["state"] == "healthy" for i in
                         daemon.health()["services"]["acme"]["instances"].values()), 10,
             "both instances healthy")  # fmt: skip


def test_killed_active_moves_and_the_secondary_serves_it(scene: Scene) -> None:
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    scene.a.kill()
    killed_at = time.time()
    # How fast is measured in bench/failover.py; here only that it happens.
    wait_for(lambda: scene.serves(B), 10, "the name on ca-b on both servers")
    wait_for(lambda: ("failover", "ca-b") in events(daemon), 5, "the audit entry")
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert (entry["from"], entry["to"], entry["rule"]) == ("ca-a", "ca-b", "failover")
    assert entry["outcome"] == "applied" and entry["propagation_complete"] is True
    # the failing probe that decided it came after the kill, and the write after that
    assert killed_at < entry["trigger_at"] <= entry["write_acked_at"] < time.time()
    assert "Connection refused" in entry["health"]["ca-a"]["reason"]


@pytest.mark.parametrize("timeout", ["800ms", "1s"], ids=["timeout_under_interval", "equal"])
def test_frozen_active_moves_and_no_probe_run_is_skipped(scene: Scene, timeout: str) -> None:
    """A hung probe ends at its deadline, just as its next run is due: that run waits for it
    instead of being dropped (which would cost a whole interval of detection)."""
    scene.rewrite({"checks": {"interval": "1s", "timeout": timeout, "rise": 2, "fall": 2}})
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    scene.a.freeze()
    wait_for(lambda: scene.serves(B), 10, "the name on ca-b")
    scene.a.resume()
    log = daemon.log_since_start()
    assert "probe_skipped" not in log and "maximum number of running instances" not in log


def test_all_down_changes_nothing_then_sticky_when_one_returns(scene: Scene) -> None:
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    scene.a.kill()
    scene.b.kill()
    wait_for(lambda: ("all_down", None) in events(daemon), 10, "the all-down alarm")
    assert scene.serves(A)  # fail-static
    scene.b.start()  # the secondary comes back first: the name moves there
    wait_for(lambda: scene.serves(B), 10, "the name on ca-b")
    scene.a.start()  # the primary comes back: the name stays (sticky)
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"]
             == "healthy", 10, "ca-a healthy")  # fmt: skip
    daemon.wait_cycles(2)  # it decided on ca-a's recovery, then cycled twice more
    assert scene.serves(B)
    assert [e for e in events(daemon) if e[0] == "failover"] == [("failover", "ca-b")]


def test_failback_auto_returns_after_failback_after(scene: Scene) -> None:
    scene.rewrite({"failback": "auto", "failback_after": "3s"})
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    scene.a.kill()
    wait_for(lambda: scene.serves(B), 10, "failover")
    scene.a.start()
    healthy_again = time.monotonic()
    wait_for(lambda: scene.serves(A), 15, "failback to ca-a")
    assert time.monotonic() - healthy_again >= 3
    # The audit entry is written once propagation is confirmed: a moment after DNS serves it.
    wait_for(
        lambda: (
            [e for e in events(daemon) if e[0] == "failover"]
            == [("failover", "ca-b"), ("failover", "ca-a")]
        ),
        5,
        "both moves audited",
    )


def test_manual_failover_without_a_daemon_pins_and_survives_a_restart(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(scene.config)
    assert main(["failover", "acme", "--to", "ca-b", "--reason", "drill", "-c", config]) == 0
    assert scene.serves(B)
    assert "pinned to ca-b" in capsys.readouterr().out
    daemon = scene.daemon()  # the pin holds: the daemon does not undo it
    settled(daemon)
    daemon.wait_cycles(2)
    assert scene.serves(B)
    daemon.stop()
    daemon = scene.daemon()
    settled(daemon)
    daemon.wait_cycles(2)
    assert scene.serves(B)
    assert main(["release", "acme", "-c", config]) == 0
    daemon.wait_cycles(2)  # each cycle reads the pins again
    assert scene.serves(B)  # released: sticky, ca-b is healthy
    assert not any(e["event"] == "failover" for e in daemon.audit())


def test_manual_failover_with_a_daemon_and_refusals(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(scene.config)
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    assert main(["failover", "acme", "--to", "ca-b", "-c", config]) == 0
    assert scene.serves(B)
    daemon.wait_cycles(2)  # the daemon reads the pin and leaves the name where it is
    assert scene.serves(B)
    scene.a.kill()
    assert main(["failover", "acme", "--to", "ca-a", "-c", config]) == 3  # unhealthy: refused
    assert "refused" in capsys.readouterr().err
    assert scene.serves(B)
    assert main(["failover", "acme", "--to", "nope", "-c", config]) == 2


def test_drain_moves_away_and_undrain_does_not_move_back(scene: Scene) -> None:
    config = str(scene.config)
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    assert main(["drain", "ca-a", "--reason", "kernel update", "-c", config]) == 0
    wait_for(lambda: scene.serves(B), 15, "drained away")
    assert main(["undrain", "ca-a", "-c", config]) == 0
    daemon.wait_cycles(2)  # each cycle reads the drains again
    assert scene.serves(B)


def test_drain_without_a_daemon_moves_at_once(scene: Scene) -> None:
    assert main(["drain", "ca-a", "--reason", "maintenance", "-c", str(scene.config)]) == 0
    assert scene.serves(B)


def _nsupdate(scene: Scene, target: str) -> None:
    script = (f"server 127.0.0.1 {scene.bind.primary.port}\nzone example.test.\n"
              f"update delete {NAME} CNAME\nupdate add {NAME} 60 CNAME {target}\nsend\n")  # fmt: skip
    done = subprocess.run(["nsupdate", "-k", str(scene.bind.update_key.path)], input=script,
                          text=True, capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_record_changed_behind_our_back_is_drift_and_left_alone(scene: Scene) -> None:
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    _nsupdate(scene, "elsewhere.example.test.")
    wait_for(lambda: ("drift", None) in events(daemon), 15, "drift reported")
    scene.a.kill()
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-a"]["state"]
             == "unhealthy", 10, "ca-a unhealthy")  # fmt: skip
    daemon.wait_cycles(2)  # it decided on ca-a's failure, then cycled twice more
    assert scene.serves("elsewhere.example.test.")
    assert not any(e["event"] == "failover" for e in daemon.audit())


def test_drift_is_adopted_when_the_service_says_so(scene: Scene) -> None:
    scene.rewrite({"adopt": True})
    _nsupdate(scene, "elsewhere.example.test.")
    scene.daemon()
    wait_for(lambda: scene.serves(A), 15, "the foreign record adopted for ca-a")


def test_sighup_with_a_broken_config_keeps_the_old_one(scene: Scene) -> None:
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    good = scene.config.read_text()
    scene.config.write_text(good.replace("provider: bind", "provider: nowhere"))
    daemon.reload()
    wait_for(lambda: "reload_failed" in daemon.log_tail(200), 5, "the reload refused")
    assert daemon.running()
    scene.a.kill()
    wait_for(lambda: scene.serves(B), 10, "failover on the old config")
    scene.config.write_text(good.replace("hold_down: 2s", "hold_down: 3s"))
    daemon.reload()
    wait_for(lambda: "reload_done" in daemon.log_tail(200), 5, "the good reload")


def test_sigterm_stops_cleanly(scene: Scene) -> None:
    daemon = scene.daemon()
    daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert daemon.proc.wait(timeout=10) == 0  # type: ignore[union-attr]
    assert "stopped" in daemon.log_tail(5)


def test_run_once_and_dry_run(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(scene.config)
    assert main(["run", "--once", "-c", config]) == 0
    assert scene.serves(A)  # healthy: nothing to write
    scene.a.kill()
    assert main(["run", "--once", "--dry-run", "-c", config]) == 0
    out = capsys.readouterr().out
    assert "[dry-run: not written]" in out and "ca-a.example.test. -> ca-b.example.test." in out
    assert scene.serves(A)
    assert main(["run", "--once", "-c", config]) == 0
    assert scene.serves(B)
    # a one-shot flip is verified as a client would see it, as the daemon's are
    assert "clients get through (the written record): directory, nonce ok" in (
        capsys.readouterr().out
    )


def test_status_shows_the_live_record_and_health(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(scene.config)
    daemon = scene.daemon()
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-b"]["state"]
             == "healthy", 10, "settled")  # fmt: skip
    main(["drain", "ca-b", "--reason", "disk swap", "-c", config])
    capsys.readouterr()
    assert main(["status", "-c", config]) == 0
    out = capsys.readouterr().out
    assert f"daemon: running, pid {daemon.pid}" in out
    assert f"acme: {NAME} CNAME → {A}  [ca-a]" in out
    assert "ca-b (drained): healthy" in out
    assert main(["status", "--json", "-c", config]) == 0
    import json

    document = json.loads(capsys.readouterr().out)
    assert document["services"]["acme"]["instance"] == "ca-a"
    assert document["drains"]["ca-b"]["reason"] == "disk swap"


def test_plan_against_the_sample_zone_file(
    scene: Scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = tmp_path / "example.test.zone"
    shutil.copy(scene.bind.primary.log_path.parent / "example.test.zone", zone)
    original = zone.read_bytes()
    code = main(["plan", "--zone-file", str(zone), "--zone", "example.test.",
                 "--assume", "ca-a=down", "-c", str(scene.config)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "acme: move (failover): ca-a unhealthy" in out
    assert f"-{NAME} 60 IN CNAME {A}" in out and f"+{NAME} 60 IN CNAME {B}" in out
    assert zone.read_bytes() == original
    assert scene.serves(A)


def test_the_cli_module_runs(scene: Scene) -> None:
    done = subprocess.run([sys.executable, "-m", "dnsfailover", "validate", "-c", str(scene.config)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
