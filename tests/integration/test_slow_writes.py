"""A slow DNS write holds nothing else: other services, the watchdog, shutdown (bounded).

The slow write is real: the BIND provider's `verify_servers` also lists a "server" that
takes queries and never answers (a bound UDP socket nobody reads), so the propagation wait
after a successful update runs until its timeout.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dnsfailover.controller.state import StateStore
from lab import Lab
from lab.bind import ZONE_TEXT, BindPair
from lab.pebble import Pebble
from lab.scenario import NAME, DaemonProcess, wait_for, write_config, zone_points_at

B = "ca-b.example.test."


@pytest.fixture
def mute() -> Iterator[str]:
    """HOST:PORT of a UDP socket that takes DNS queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _config(
    tmp_path: Path,
    lab: Lab,
    bind: BindPair,
    pebbles: list[Pebble],
    mute: str,
    propagation: str,
    zone_file: Path | None = None,
    **top: Any,
) -> Path:
    path = write_config(tmp_path / "config.yaml", lab, bind, pebbles, **top)
    document = yaml.safe_load(path.read_text())
    provider = document["providers"]["bind"]
    provider["verify_servers"] = [*bind.verify_servers, mute]
    provider["timeout"] = "1s"
    provider["propagation_timeout"] = propagation
    if zone_file is not None:
        document["providers"]["file"] = {"type": "zonefile", "path": str(zone_file),
                                         "zone": "example.test."}  # fmt: skip
        second = {**document["services"]["acme"], "provider": "file"}
        second["checks"] = {**second["checks"], "fall": second["checks"]["fall"] + 1}
        document["services"]["acme-file"] = second
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _failover_entries(daemon: DaemonProcess, service: str) -> list[dict[str, Any]]:
    return [e for e in daemon.audit() if e["event"] == "failover" and e["service"] == service]


def test_a_service_stuck_in_propagation_does_not_hold_another(
    lab: Lab, tmp_path: Path, mute: str
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE_TEXT)
    config = _config(tmp_path, lab, bind, [a, b], mute, "30s", zone_file=zone)
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme-file"]["active"] == "ca-a", 10, "settled")
    a.kill()
    killed = time.monotonic()
    wait_for(lambda: bind.primary.rrset(NAME, "CNAME") == {B}, 10, "acme written to BIND")
    # acme's write landed and now waits (up to 30 s) on the mute server; acme-file, which
    # decides one interval later, is written meanwhile, not after it.
    took = wait_for(lambda: zone_points_at(zone, "ca-b"), 15, "acme-file written to the file")
    assert time.monotonic() - killed < 10  # 34 s when the controller thread waited
    assert _failover_entries(daemon, "acme") == []  # its propagation is still in flight
    writing = daemon.health()["services"]["acme"]["writing"]
    assert writing["kind"] == "write" and writing["overdue"] is False
    wait_for(lambda: _failover_entries(daemon, "acme-file"), 5, "acme-file's audit entry")
    assert _failover_entries(daemon, "acme-file")[0]["outcome"] == "applied"
    assert _failover_entries(daemon, "acme") == []  # acme: still waiting on the mute server
    assert took < 10


def test_watchdog_keeps_beating_while_a_write_waits(lab: Lab, tmp_path: Path, mute: str) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = _config(tmp_path, lab, bind, [a, b], mute, "60s")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"dnsfailover-watchdog-{os.getpid()}"
    listener.bind("\0" + name)
    listener.settimeout(0.1)
    try:
        env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"}
        daemon = lab.daemon(config, env=env)
        wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
        a.kill()
        wait_for(lambda: (daemon.health()["services"]["acme"].get("writing") or {}).get("kind")
                 == "write", 10, "the write in flight")  # fmt: skip
        beats: list[float] = []
        end = time.monotonic() + 6
        while time.monotonic() < end:
            try:
                message = listener.recv(4096).decode()
            except TimeoutError:
                continue
            if "WATCHDOG=1" in message.split("\n"):
                beats.append(time.monotonic())
        gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
        assert len(beats) >= 4, beats
        assert max(gaps) < 2 * 1.0, gaps  # every tick (1 s), give or take scheduling
        writing = daemon.health()["services"]["acme"]["writing"]
        assert writing["kind"] == "write" and writing["seconds"] >= 5  # still waiting
    finally:
        listener.close()


def test_sigterm_with_a_write_in_flight_stops_within_the_grace(
    lab: Lab, tmp_path: Path, mute: str
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = _config(tmp_path, lab, bind, [a, b], mute, "60s", shutdown_grace="1s")
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    wait_for(lambda: bind.primary.rrset(NAME, "CNAME") == {B}, 10, "the write landed")
    daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    stopped = time.monotonic()
    assert daemon.proc.wait(timeout=10) == 0  # type: ignore[union-attr]
    assert time.monotonic() - stopped < 1 + 3
    entry = next(e for e in daemon.audit() if e["event"] == "abandoned")
    assert entry["outcome"] == "applied_unconfirmed"  # written; its confirmation abandoned
    store = StateStore(daemon.state_dir)
    state = store.load()  # consistent: the flip is recorded, no intent left behind
    assert [f.target for f in state.flips["acme"]] == ["ca-b"] and state.intents == {}
    _, problems = store.read_audit()
    assert problems == []


def test_route53_slow_to_insync_does_not_hold_a_bind_service(lab: Lab, tmp_path: Path) -> None:
    """Route 53's GetChange held back 8 s a call (PENDING for long, as real Route 53 often is):
    the BIND service flips on time while the Route 53 service waits for INSYNC."""
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    moto = lab.moto()
    moto.zone_with_cname("example.test.", NAME, "ca-a.example.test.")
    slow = lab.slow_proxy(moto.endpoint_url, "/change/", delay=8)
    credentials = moto.write_credentials(tmp_path / "aws")
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b])
    document = yaml.safe_load(config.read_text())
    document["providers"]["aws"] = {"type": "route53", "zone": "example.test.",
                                    "endpoint_url": slow.endpoint_url,
                                    "credentials_file": str(credentials),
                                    "poll_interval": "100ms", "propagation_timeout": "30s"}  # fmt: skip
    document["services"] = {"aws": {**document["services"]["acme"], "provider": "aws"},
                            "acme": document["services"]["acme"]}  # fmt: skip
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    killed = time.monotonic()
    wait_for(lambda: all(s.rrset(NAME, "CNAME") == {B} for s in bind.servers), 10, "BIND on ca-b")
    assert time.monotonic() - killed < 2 * 1.0 + 0.8 + 3  # detection, not Route 53's wait
    wait_for(lambda: slow.held >= 1, 5, "Route 53's GetChange under way")
    assert _failover_entries(daemon, "aws") == []  # still waiting for INSYNC
    wait_for(lambda: _failover_entries(daemon, "acme"), 5, "the BIND service's audit entry")
    wait_for(lambda: _failover_entries(daemon, "aws"), 20, "Route 53 INSYNC in the end")
    assert _failover_entries(daemon, "aws")[0]["propagation_complete"] is True
