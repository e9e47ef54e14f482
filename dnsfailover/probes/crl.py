"""The CRL probe (RFC 5280 §5): fetch, parse, and check that the CRL is current and genuine.

Checks: the issuer name matches; the signature verifies with the issuer's key; thisUpdate is not
in the future; nextUpdate is at least `min_runway` away; an IssuingDistributionPoint, when
present, names the URL it was fetched from (Boulder shards carry one). Reports the runway
(time to nextUpdate) and the number of entries. The issuer name of a CRL is the target's text,
read before any signature check: it is cleaned and capped before it goes into a reason. Any
exception is an ERROR result naming it: `run` never raises.
Imports config values, errors, results, text and the probes' own modules; nothing of DNS,
health or policy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from dnsfailover.config.models import CrlCheck
from dnsfailover.probes.certs import load_certificate
from dnsfailover.probes.http import HttpClient, ProbeFailed, fail
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import clean

log = logging.getLogger(__name__)

MAX_SKEW = 300.0


class CrlProbe:
    check = "crl"

    def __init__(
        self,
        settings: CrlCheck,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
    ) -> None:
        self.settings = settings
        self.required = settings.required
        self._clock = clock
        self.http = http or HttpClient()
        self.issuer = load_certificate(settings.issuer, "crl.issuer")

    def run(self, deadline: float) -> ProbeResult:
        start, now = time.monotonic(), self._clock()
        details: dict[str, Any] = {}
        try:
            crl = self.parse(self._fetch(deadline, details))
            hours = self.verify(crl, now, details) / 3600
            outcome = Outcome.HEALTHY
            reason = f"{details['entries']} entries, runway {hours:.1f}h"
        except ProbeFailed as e:
            outcome, reason = e.outcome, e.reason
        except Exception as e:  # a bug of ours, or a case not foreseen: a result all the same
            log.warning("probe_crashed check=crl error=%s", type(e).__name__, exc_info=True)
            return ProbeResult.crashed(self.check, e, now, time.monotonic() - start)
        # A short or negative runway is reported even when it is why the check failed.
        runway: float | None = details.get("runway")
        return ProbeResult(
            self.check, outcome, reason, time.monotonic() - start, now, details, runway=runway
        )

    def _fetch(self, deadline: float, details: dict[str, Any]) -> bytes:
        response = self.http.fetch("GET", self.settings.url, deadline, self.settings.max_size)
        details["status"] = response.status
        if response.status != 200:
            fail(f"HTTP {response.status}")
        return response.body

    @staticmethod
    def parse(body: bytes) -> x509.CertificateRevocationList:
        try:
            if body.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_crl(body)
            return x509.load_der_x509_crl(body)
        except ValueError:
            fail("the answer is not a CRL (DER or PEM)")

    def verify(
        self, crl: x509.CertificateRevocationList, now: float, details: dict[str, Any]
    ) -> float:
        try:
            if crl.issuer != self.issuer.subject:
                issuer = clean(crl.issuer.rfc4514_string(), 120)  # the target's words
                fail(f"issued by {issuer}, not the configured issuer")
            if not crl.is_signature_valid(self.issuer.public_key()):  # type: ignore[arg-type]
                fail("the CRL signature does not verify with the issuer's key")
            this_update = crl.last_update_utc.timestamp()
            next_update = crl.next_update_utc
            idp = self._distribution_point(crl)
            entries = len(crl)
        except UnsupportedAlgorithm as e:  # we cannot check it: says nothing either way
            raise ProbeFailed(
                Outcome.ERROR, f"cannot verify the CRL: {clean(str(e), 120)}"
            ) from None
        except (ValueError, TypeError) as e:
            fail(f"malformed CRL: {clean(str(e), 120)}")
        details.update(entries=entries, this_update=crl.last_update_utc.isoformat())
        if this_update > now + MAX_SKEW:
            fail(f"thisUpdate is {this_update - now:.0f}s in the future")
        if next_update is None:
            fail("no nextUpdate: relying parties cannot tell when it goes stale")
        runway = next_update.timestamp() - now
        details.update(next_update=next_update.isoformat(), runway=runway)
        if runway < self.settings.min_runway:
            fail(
                f"runway {runway / 3600:.1f}h is under min_runway "
                f"{self.settings.min_runway / 3600:.1f}h"
            )
        if idp is not None and self.settings.url not in idp:
            named = clean(", ".join(idp), 120)  # the target's words
            fail(f"IssuingDistributionPoint {named} does not name {self.settings.url}")
        return runway

    @staticmethod
    def _distribution_point(crl: x509.CertificateRevocationList) -> list[str] | None:
        try:
            idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
        except x509.ExtensionNotFound:
            return None
        return [
            n.value for n in idp.full_name or [] if isinstance(n, x509.UniformResourceIdentifier)
        ]
