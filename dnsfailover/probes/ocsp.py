"""The OCSP probe (RFC 6960, RFC 5019 profile): ask about one certificate, verify the answer.

The request is built from the issuer's name and key hashes and a serial (or from the
certificate itself) and sent by GET when it fits in 255 bytes (RFC 5019 §5), else by POST.
The answer is accepted per RFC 6960 §3.2: it is about the certificate asked for; its signature
verifies; the signer is the issuer, or a delegated responder certificate that carries
id-kp-OCSPSigning, was issued directly by the issuer and is valid now (§4.2.2.2); thisUpdate
is not in the future (allowing clock skew); nextUpdate, when present, is in the future; an
echoed nonce matches the one sent. The runway is the time until nextUpdate.
An answer signed with an algorithm we cannot verify is an ERROR (we cannot tell), and any other
exception is an ERROR result naming it: `run` never raises.
Imports config values, errors, results, text and the probes' own modules; nothing of DNS,
health or policy.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from dnsfailover.config.models import OcspCheck
from dnsfailover.probes.certs import issued_by, load_certificate, signature_valid
from dnsfailover.probes.http import HttpClient, ProbeFailed
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import clean

log = logging.getLogger(__name__)

RESPONSE_CAP = 64 * 1024
GET_LIMIT = 255

_STATUS_OUTCOME = {
    ocsp.OCSPResponseStatus.TRY_LATER: Outcome.OVERLOADED,
}


def _reject(reason: str, outcome: Outcome = Outcome.UNHEALTHY) -> NoReturn:
    raise ProbeFailed(outcome, reason)


class OcspProbe:
    check = "ocsp"

    def __init__(
        self,
        settings: OcspCheck,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
        send_nonce: bool = False,
    ) -> None:
        self.settings = settings
        self.required = settings.required
        self._clock = clock
        self.http = http or HttpClient()
        self.issuer = load_certificate(settings.issuer, "ocsp.issuer")
        if settings.cert is not None:
            self.serial = load_certificate(settings.cert, "ocsp.cert").serial_number
        else:
            assert settings.serial is not None
            self.serial = int(settings.serial, 0)
        self._send_nonce = send_nonce
        name_hash = hashes.Hash(hashes.SHA1())
        name_hash.update(self.issuer.subject.public_bytes())
        self._name_hash = name_hash.finalize()
        self._key_hash = x509.SubjectKeyIdentifier.from_public_key(self.issuer.public_key()).digest

    def build_request(self) -> tuple[bytes, bytes | None]:
        """The DER request and the nonce in it (if any)."""
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self._name_hash, self._key_hash, self.serial, hashes.SHA1()
        )
        nonce = None
        if self._send_nonce:
            nonce = os.urandom(16)
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.build().public_bytes(serialization.Encoding.DER), nonce

    def run(self, deadline: float) -> ProbeResult:
        start, now = time.monotonic(), self._clock()
        details: dict[str, Any] = {"serial": hex(self.serial)}
        warnings: list[str] = []
        runway = None
        try:
            request, nonce = self.build_request()
            body = self._fetch(request, deadline, details)
            runway = self.verify(body, nonce, now, details, warnings)
            outcome = Outcome.HEALTHY
            freshness = "no nextUpdate" if runway is None else f"runway {runway / 3600:.1f}h"
            reason = f"{details['cert_status']}, {freshness}"
        except ProbeFailed as e:
            outcome, reason = e.outcome, e.reason
        except Exception as e:  # a bug of ours, or a case not foreseen: a result all the same
            log.warning("probe_crashed check=ocsp error=%s", type(e).__name__, exc_info=True)
            return ProbeResult.crashed(self.check, e, now, time.monotonic() - start)
        return ProbeResult(
            self.check,
            outcome,
            reason,
            time.monotonic() - start,
            now,
            details,
            tuple(warnings),
            runway=runway,
        )

    def _fetch(self, request: bytes, deadline: float, details: dict[str, Any]) -> bytes:
        encoded = quote(base64.b64encode(request).decode("ascii"), safe="")
        url = self.settings.url
        use_get = self.settings.method == "get" or (
            self.settings.method == "auto" and len(encoded) <= GET_LIMIT
        )
        details["method"] = "GET" if use_get else "POST"
        if use_get:
            response = self.http.fetch(
                "GET", url.rstrip("/") + "/" + encoded, deadline, RESPONSE_CAP
            )
        else:
            response = self.http.fetch(
                "POST",
                url,
                deadline,
                RESPONSE_CAP,
                data=request,
                headers={"Content-Type": "application/ocsp-request"},
            )
        details["status"] = response.status
        if response.status != 200:
            outcome = Outcome.OVERLOADED if response.status == 503 else Outcome.UNHEALTHY
            _reject(f"HTTP {response.status}", outcome)
        return response.body

    def verify(
        self,
        body: bytes,
        nonce: bytes | None,
        now: float,
        details: dict[str, Any],
        warnings: list[str],
    ) -> float | None:
        """Check a DER response per RFC 6960 §3.2; return the runway in seconds."""
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            _reject("the answer is not an OCSP response")
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            status = response.response_status.name
            _reject(
                f"responder said {status}",
                _STATUS_OUTCOME.get(response.response_status, Outcome.UNHEALTHY),
            )
        try:
            single = self._single_for_us(response)
            signer = self._signer(response, now)
            if not signature_valid(
                signer.public_key(),
                response.signature,
                response.tbs_response_bytes,
                response.signature_hash_algorithm,
            ):
                _reject("the response signature does not verify")
            echoed = self._echoed_nonce(response)
        except UnsupportedAlgorithm as e:  # we cannot check it: says nothing either way
            _reject(f"cannot verify the response: {clean(str(e), 120)}", Outcome.ERROR)
        except ValueError as e:  # cryptography raises ValueError on malformed structures
            _reject(f"malformed OCSP response: {clean(str(e), 120)}")
        if nonce is not None and echoed is not None and echoed != nonce:
            _reject("the echoed nonce does not match the one sent")
        skew = self.settings.max_skew
        this_update = single.this_update_utc.timestamp()
        if this_update > now + skew:
            _reject(f"thisUpdate is {this_update - now:.0f}s in the future")
        details["this_update"] = single.this_update_utc.isoformat()
        status = single.certificate_status.name.lower()
        details["cert_status"] = status
        if status != self.settings.expect:
            _reject(f"certificate status is {status}, expected {self.settings.expect}")
        if single.next_update_utc is None:
            warnings.append("no nextUpdate: clients cannot cache this answer (RFC 5019 §2.2.4)")
            return None
        runway = single.next_update_utc.timestamp() - now
        details["next_update"] = single.next_update_utc.isoformat()
        if runway <= 0:
            _reject(f"the response expired {-runway:.0f}s ago (nextUpdate passed)")
        if runway < self.settings.min_runway:
            warnings.append(f"runway {runway / 60:.0f} min is under min_runway")
        return runway

    def _single_for_us(self, response: ocsp.OCSPResponse) -> ocsp.OCSPSingleResponse:
        for single in response.responses:
            if (
                single.serial_number == self.serial
                and single.issuer_name_hash == self._name_hash
                and single.issuer_key_hash == self._key_hash
                and isinstance(single.hash_algorithm, hashes.SHA1)
            ):
                return single
        _reject("the response is not about the certificate asked for")

    def _signer(self, response: ocsp.OCSPResponse, now: float) -> x509.Certificate:
        """The issuer, or a delegated responder it issued with id-kp-OCSPSigning (§4.2.2.2)."""
        if self._names_signer(response, self.issuer):
            return self.issuer
        for cert in response.certificates:
            if not self._names_signer(response, cert):
                continue
            if not issued_by(cert, self.issuer):
                _reject("the responder certificate was not issued by the issuer")
            try:
                usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                usage = x509.ExtendedKeyUsage([])
            if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
                _reject("the responder certificate lacks id-kp-OCSPSigning")
            if (
                not cert.not_valid_before_utc.timestamp()
                <= now
                <= cert.not_valid_after_utc.timestamp()
            ):
                _reject("the responder certificate is not valid now")
            return cert
        _reject("the response is signed by neither the issuer nor a delegated responder")

    @staticmethod
    def _names_signer(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
        if response.responder_name is not None:
            return bool(response.responder_name == cert.subject)
        key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        return response.responder_key_hash == key_id

    @staticmethod
    def _echoed_nonce(response: ocsp.OCSPResponse) -> bytes | None:
        try:
            return response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None
