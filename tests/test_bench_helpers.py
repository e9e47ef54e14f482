"""The arithmetic the benchmarks report with, and the flap simulation's ground truth."""

from __future__ import annotations

import pytest

from bench.flap import alternating, random_failures, simulate
from bench.scale import _gaps
from bench.stats import percentile, summary


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(values, 95) == pytest.approx(3.85)
    assert summary(values)["median"] == 2.5


def test_gaps_are_per_instance_and_count_directory_requests_only() -> None:
    seen = [(0.0, 1, "GET /dir"), (0.1, 1, "HEAD /nonce"), (0.5, 2, "GET /dir"),
            (10.0, 1, "GET /dir"), (10.7, 2, "GET /dir"), (20.5, 1, "GET /dir")]  # fmt: skip
    result = _gaps(seen)
    assert result["probes"] == 5
    assert sorted(result["gaps"]) == pytest.approx([10.0, 10.2, 10.5])


def test_alternating_failures_never_flip_from_fall_two() -> None:
    assert simulate(2, "auto", alternating(0), cycles=500)["flips"] == 0
    assert simulate(1, "manual", alternating(0), cycles=500)["flips"] == 1  # then sticky


def test_flaky_preferred_instance_does_not_get_the_name_back() -> None:
    """Failback waits for steady health: with 20% random failures, after the first real
    failover the name stays put (failback on HEALTHY alone moved it back dozens of times)."""
    result = simulate(3, "auto", random_failures(1), cycles=5000)
    assert result["a_turned_unhealthy"] > 10  # the instance did fail over and over
    assert result["flips"] == 1
