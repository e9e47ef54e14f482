"""Probes: each takes an instance's settings and a deadline and returns a ProbeResult.

A target that is down, slow or hostile is a result, never an exception; only our own setup
(an unreadable issuer certificate or key) raises ProbeSetupError, when the probe is built. A
probe that raises all the same (a bug) returns an ERROR result naming the exception.
Importing this package loads no HTTP or crypto library: `build_probes` does, when it runs.
Imports config values and results; nothing of DNS, health or policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from dnsfailover.config.models import Instance
from dnsfailover.results import ProbeResult

__all__ = ["Probe", "build_probes"]


class Probe(Protocol):
    check: str
    required: bool

    def run(self, deadline: float) -> ProbeResult: ...


def build_probes(
    instance: Instance,
    clock: Callable[[], float] = time.time,
    connect_timeout: float | None = None,
    public_name: str | None = None,
    max_retry_after: float | None = None,
) -> list[Probe]:
    """The probes an instance's config asks for, in a fixed order: acme, ocsp, crl.
    `connect_timeout` bounds TCP connect + TLS handshake of the ACME probe; `public_name` is
    the name clients use (the service's), which the ACME probe presents (`as_client`);
    `max_retry_after` caps how long a Retry-After keeps the ACME probe quiet (default: the
    default checks' fall x interval)."""
    from dnsfailover.probes.acme import DEFAULT_MAX_RETRY_AFTER, AcmeProbe
    from dnsfailover.probes.crl import CrlProbe
    from dnsfailover.probes.http import HttpClient
    from dnsfailover.probes.ocsp import OcspProbe

    probes: list[Probe] = []
    if instance.acme is not None:
        client_name = public_name if instance.acme.as_client else None
        cap = DEFAULT_MAX_RETRY_AFTER if max_retry_after is None else max_retry_after
        probes.append(AcmeProbe(instance.acme, clock, None, connect_timeout, client_name, cap))
    revocation_http = HttpClient()  # OCSP and CRL are plain HTTP, or HTTPS on public roots
    if instance.ocsp is not None:
        probes.append(OcspProbe(instance.ocsp, clock, revocation_http))
    if instance.crl is not None:
        probes.append(CrlProbe(instance.crl, clock, revocation_http))
    return probes
