"""The probe deadline's watchdog shuts down the sockets of its own probe, and only those."""

from __future__ import annotations

import os
import socket
import time

from dnsfailover.probes.http import _Budget


def test_expiry_shuts_down_the_probe_socket() -> None:
    ours, peer = socket.socketpair()
    budget = _Budget(time.monotonic() + 10)
    budget.track(ours.fileno())
    budget.expire()
    assert peer.recv(1) == b""  # the probe's side was shut down
    ours.close()
    peer.close()


def test_expiry_leaves_a_reused_fd_number_alone() -> None:
    """A socket closed during a probe frees its number; another socket may get it."""
    ours, _ = socket.socketpair()
    number = ours.fileno()
    budget = _Budget(time.monotonic() + 10)
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
