"""The metrics server is bounded (metrics.py MetricsServer, issue 21): idle connections cost
no thread, a scrape answers while hundreds of them are open, and the idle ones are capped."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from dnsfailover.metrics import Metrics, MetricsServer


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    metrics.serve("127.0.0.1:0")
    try:
        yield metrics
    finally:
        metrics.close()


def scrape(server: MetricsServer) -> str:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_idle_connections_hold_no_thread_and_a_scrape_answers(metrics: Metrics) -> None:
    server = metrics._server
    assert isinstance(server, MetricsServer)
    before = threading.active_count()
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(300)]
    try:
        text = scrape(server)
        assert "dnsfailover_probes_total" in text or "# HELP dnsfailover_" in text
        assert threading.active_count() <= before + 2  # the pool's workers at most
    finally:
        for conn in idle:
            conn.close()


def test_idle_connections_beyond_the_cap_are_closed_oldest_first() -> None:
    server = MetricsServer(("127.0.0.1", 0), Metrics().registry, max_idle=4, idle_timeout=60)
    try:
        first = socket.create_connection(server.address, timeout=5)
        others = [socket.create_connection(server.address, timeout=5) for _ in range(4)]
        assert first.recv(1) == b""  # closed by the server to make room (a deadline: timeout)
        assert "# HELP dnsfailover_" in scrape(server)
        for conn in [first, *others]:
            conn.close()
    finally:
        server.close()


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    server = MetricsServer(("127.0.0.1", 0), Metrics().registry, idle_timeout=0.2)
    try:
        started = time.monotonic()
        with socket.create_connection(server.address, timeout=5) as conn:
            assert conn.recv(1) == b""
        assert time.monotonic() - started < 3
    finally:
        server.close()
