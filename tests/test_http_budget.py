"""The probe deadline's watchdog shuts down the sockets of its own probe, and only those."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import requests

from dnsfailover.probes.http import HttpClient
from dnsfailover.probes.transport import Budget


def test_expiry_shuts_down_the_probe_socket() -> None:
    ours, peer = socket.socketpair()
    budget = Budget(time.monotonic() + 10)
    budget.track(ours.fileno())
    budget.expire()
    assert peer.recv(1) == b""  # the probe's side was shut down
    ours.close()
    peer.close()


def test_expiry_leaves_a_reused_fd_number_alone() -> None:
    """A socket closed during a probe frees its number; another socket may get it."""
    ours, _ = socket.socketpair()
    number = ours.fileno()
    budget = Budget(time.monotonic() + 10)
    budget.track(number)
    ours.close()
    other, other_peer = socket.socketpair()
    duplicated = other.fileno() != number
    if duplicated:  # the kernel gave the lowest free number; make sure it is the old one
        os.dup2(other.fileno(), number)
    try:
        budget.expire()
        other.sendall(b"x")
        assert other_peer.recv(1) == b"x"
    finally:
        if duplicated:
            os.close(number)
        other.close()
        other_peer.close()


def test_an_unreadable_ca_bundle_fails_each_request_not_the_client(tmp_path: Path) -> None:
    """A bundle that is missing or garbage must not stop the daemon from building its probes:
    each probe reports it instead."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for bundle in (tmp_path / "missing.pem", garbage):
        client = HttpClient(ca_bundle=str(bundle))
        with pytest.raises((OSError, requests.RequestException)):
            client.request("GET", "https://127.0.0.1:9/dir", time.monotonic() + 1, 1000)
