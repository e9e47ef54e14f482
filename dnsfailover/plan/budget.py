"""The convergence budget: how long after an instance fails until every client has moved.

    detection   fall × interval + timeout (a hang is detected only at the probe's deadline)
  + write       the compare-and-swap write, as last measured
  + propagation until every authoritative server serves it (last, and p95 of recent ones)
  + client TTL  how long resolvers and clients may keep the old answer: the record's TTL,
                raised to `resolver_min_ttl` when resolvers clamp low TTLs

With `degraded_ttl`, a flip that follows soon after another (inside hold_down) or that ends a
time with no healthy instance replaces a record carrying the lower TTL: that budget is shown
too. Pure: measurements in, a value out; imports config values only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dnsfailover.config.models import Service


def _p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Budget:
    detection: float
    write: float | None  # last measured; None before the first write
    propagation: float | None  # last measured
    propagation_p95: float | None
    client_ttl: float
    degraded_client_ttl: float | None  # with degraded_ttl: the TTL a degraded record carries

    @property
    def total(self) -> float:
        propagation = self.propagation_p95 if self.propagation_p95 is not None else 0.0
        return self.detection + (self.write or 0.0) + propagation + self.client_ttl

    def parts(self) -> dict[str, float]:
        return {
            "detection": self.detection,
            "write": self.write or 0.0,
            "propagation": self.propagation_p95 or 0.0,
            "client_ttl": self.client_ttl,
            "total": self.total,
        }

    def text(self) -> str:
        def seconds(value: float | None) -> str:
            return "not measured yet" if value is None else f"{value:.2f}s"

        line = (
            f"detection {self.detection:.1f}s + write {seconds(self.write)} + propagation "
            f"{seconds(self.propagation)} (p95 {seconds(self.propagation_p95)}) + client TTL "
            f"{self.client_ttl:.0f}s = {self.total:.1f}s"
        )
        if self.degraded_client_ttl is not None:
            line += f" ({self.degraded_client_ttl:.0f}s client TTL while degraded)"
        return line


def convergence_budget(
    service: Service, writes: Sequence[float], propagations: Sequence[float]
) -> Budget:
    """`writes` and `propagations`: recent measurements, oldest first."""
    checks = service.checks
    floor = service.resolver_min_ttl or 0
    degraded = None if service.degraded_ttl is None else max(service.degraded_ttl, floor)
    return Budget(
        detection=checks.fall * checks.interval + checks.timeout,
        write=writes[-1] if writes else None,
        propagation=propagations[-1] if propagations else None,
        propagation_p95=_p95(propagations),
        client_ttl=float(max(service.ttl, floor)),
        degraded_client_ttl=None if degraded is None else float(degraded),
    )
