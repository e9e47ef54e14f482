"""What a probe returns: a value, never an exception. Imports only `text`, below it.

Probes produce it; health, the controller and the documents it writes consume it. Its reason,
warnings and details often carry what a target sent (a problem type, an issuer name, a URL):
they are cleaned and bounded here, when the result is made (`text.clean`, `text.bounded`), so
no probe can forget and nothing downstream (logs, the site report in etcd, a hook's argv)
receives a NUL byte or 2.5 million characters.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dnsfailover.text import bounded, clean


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

    def __post_init__(self) -> None:
        # Frozen: the cleaned values replace the raw ones once, here.
        object.__setattr__(self, "reason", clean(self.reason))
        object.__setattr__(self, "warnings", tuple(bounded(tuple(self.warnings))))
        object.__setattr__(self, "details", MappingProxyType(bounded(self.details)))

    @classmethod
    def crashed(
        cls, check: str, error: BaseException, observed_at: float, latency: float = 0.0
    ) -> ProbeResult:
        """The result of a probe that raised: ERROR (our side failed), never a missing one."""
        words = str(error)
        reason = f"probe crashed: {type(error).__name__}" + (
            f": {clean(words, 160)}" if words else ""
        )
        return cls(check, Outcome.ERROR, reason, latency, observed_at)

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
