"""What a probe returns: a value, never an exception. A leaf: imports nothing from the package.

Probes produce it; health, the controller and the documents it writes consume it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class Outcome(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    OVERLOADED = "overloaded"  # alive but shedding load (503 rateLimited, OCSP tryLater)
    ERROR = (
        "error"  # our side failed (the probe itself is rate limited): says nothing of the target
    )


@dataclass(frozen=True)
class ProbeResult:
    check: str  # "acme", "ocsp", "crl"
    outcome: Outcome
    reason: str  # one line an operator understands
    latency: float  # seconds, the whole probe
    observed_at: float  # wall-clock seconds since the epoch, from the injected clock
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()
    runway: float | None = None  # seconds until the freshest revocation data expires
    tls_days_left: float | None = None
    retry_after: float | None = None  # seconds the target asked us to wait

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.HEALTHY

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "latency": round(self.latency, 4),
            "observed_at": self.observed_at,
            "details": dict(self.details),
            "warnings": list(self.warnings),
            "runway": self.runway,
            "tls_days_left": self.tls_days_left,
            "retry_after": self.retry_after,
        }
