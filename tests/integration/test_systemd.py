"""The unit file passes systemd's own checks, and the daemon speaks sd_notify correctly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab import Lab
from lab.scenario import wait_for, write_config
from tests.prerequisites import binary

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "dnsfailover.service"


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The shipped unit, with ExecStart pointing at this venv's console script."""
    script = Path(sys.executable).with_name("dnsfailover")
    unit = tmp_path / "dnsfailover.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/dnsfailover", str(script)))
    return unit


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary("systemd-analyze", "systemd")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, check=False)


def test_unit_verifies(tmp_path: Path) -> None:
    done = _analyze("verify", str(_unit_for_this_machine(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "dnsfailover.service" not in done.stderr, done.stderr


def test_unit_limits_resources_and_shows_the_templates() -> None:
    """Issue 21: memory and task limits set; the network allow-list and the zone-file's
    ReadWritePaths= are templates each deployment fills in (commented out)."""
    lines = UNIT.read_text().splitlines()
    assert "MemoryMax=512M" in lines and "TasksMax=256" in lines
    for template in ("#IPAddressDeny=any", "#ReadWritePaths=", "#SocketBindAllow="):
        assert any(line.startswith(template) for line in lines), template
    assert not any(line.startswith(("IPAddressDeny", "ReadWritePaths")) for line in lines)


def test_unit_with_its_templates_filled_in_verifies(tmp_path: Path) -> None:
    """What an operator gets by uncommenting the templates is still a valid unit."""
    unit = _unit_for_this_machine(tmp_path)
    filled = re.sub(
        r"^#((?:IPAddress|SocketBind)\w+=.*|ReadWritePaths=.*)$",
        r"\1",
        unit.read_text(),
        flags=re.MULTILINE,
    )
    assert "\nIPAddressDeny=any" in filled and "\nReadWritePaths=" in filled
    unit.write_text(filled)
    done = _analyze("verify", str(unit))
    assert done.returncode == 0, done.stderr
    assert "dnsfailover.service" not in done.stderr, done.stderr


def test_unit_exposure_is_at_most_2(tmp_path: Path) -> None:
    done = _analyze("security", "--offline=true", str(_unit_for_this_machine(tmp_path)))
    match = re.search(r"Overall exposure level for dnsfailover.service: ([0-9.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout


def test_notify_sequence_across_start_reload_and_stop(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b])
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"dnsfailover-test-{os.getpid()}"
    listener.bind("\0" + name)  # an abstract socket, as systemd may hand out
    listener.settimeout(0.2)
    messages: list[str] = []

    def collect(until: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                messages.extend(listener.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue
            if until in messages:
                return
        raise AssertionError(f"no {until} in {messages}")

    try:
        daemon = lab.daemon(config, env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
        collect("READY=1", 10)
        ready_at = messages.index("READY=1")
        assert any(m.startswith("STATUS=acme→") for m in messages[ready_at:])
        messages.clear()
        collect("WATCHDOG=1", 5)
        daemon.reload()
        collect("RELOADING=1", 5)
        reloading = messages.index("RELOADING=1")
        collect("READY=1", 10)
        assert messages.index("READY=1", reloading) > reloading
        os.kill(daemon.pid, signal.SIGTERM)
        collect("STOPPING=1", 10)
        wait_for(lambda: not daemon.running(), 10, "the daemon to exit")
        assert daemon.proc is not None and daemon.proc.returncode == 0
    finally:
        listener.close()
