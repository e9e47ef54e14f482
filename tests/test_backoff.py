"""Backoff per service: doubling from the first delay up to the cap, reset by a success."""

from __future__ import annotations

from dnsfailover.controller.backoff import Backoff


def test_doubles_to_the_cap_and_resets_per_key() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    delays = [backoff.failed("acme", now=0.0) for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert not backoff.due("acme", now=29.9) and backoff.due("acme", now=30.0)
    assert backoff.due("other", now=0.0)  # each key on its own
    backoff.succeeded("acme")
    assert backoff.due("acme", now=0.0) and backoff.failed("acme", now=0.0) == 1.0
