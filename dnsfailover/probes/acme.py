"""The ACME probe (RFC 8555): directory, a fresh nonce, and optional deep checks.

1. GET the directory, as a client would (`as_client`, the default): connected to the
   instance's URL host, but presenting the service's public name for SNI and Host, so the
   certificate must cover the name clients use. 200, a JSON object holding newNonce,
   newAccount and newOrder (§7.1.1); unknown keys are ignored (Boulder adds a random one);
   every ACME resource URL is https (else unhealthy) and names the public host and port
   (Boulder builds them from Host): one naming another host, such as an internal name, is a
   warning — clients would be sent there — and unhealthy with `strict_urls`. Follow-up
   requests go to the instance probed, whatever host its URLs name.
2. HEAD newNonce: 200 with a base64url Replay-Nonce that differs from the last one (§7.2).
   A missing `Cache-Control: no-store` is a warning: Pebble and Boulder omit it.
3. `account` (optional): POST newAccount {"onlyReturnExisting": true} signed by the probe key
   (§7.3.1): 200 or accountDoesNotExist prove the account database answered; one retry on
   badNonce with the nonce from the error (§6.5).
4. `renewal_info` (optional, RFC 9773): GET renewalInfo/<AKI>.<serial> reads the database.

5xx, serverInternal, timeouts and connection errors are unhealthy; 503 rateLimited is
"overloaded" (alive: honour Retry-After, up to `max_retry_after`: an overloaded instance may
delay its own detection by one detection period, no more); 429 on the probe's own account means
the probe is rate limited, which says nothing about the instance. A bug of ours that raises is
an ERROR result naming the exception, never an exception out of `run`.
Imports config values, errors, results, text and the probes' own modules; nothing of DNS,
health or policy.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from dnsfailover.config.models import AcmeCheck
from dnsfailover.errors import ProbeSetupError
from dnsfailover.probes import jws
from dnsfailover.probes.http import HttpClient, ProbeFailed, Response, fail
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import clean

log = logging.getLogger(__name__)

SMALL_CAP = 64 * 1024
REQUIRED = ("newNonce", "newAccount", "newOrder")
RESOURCES = (*REQUIRED, "revokeCert", "keyChange", "renewalInfo", "newAuthz")
NONCE = re.compile(r"[A-Za-z0-9_-]+")  # base64url (RFC 8555 §6.5.1), whole header: fullmatch
PROBLEM = "urn:ietf:params:acme:error:"
# The default checks' fall x interval (2 x 10s); Runtime.build passes the service's own.
DEFAULT_MAX_RETRY_AFTER = 20.0
LONGEST_RETRY_AFTER = 365 * 86400.0  # what a Retry-After can say at most, before the cap


def _problem_type(response: Response) -> str:
    try:
        document = json.loads(response.body)
    except ValueError:
        return ""
    kind = document.get("type", "") if isinstance(document, dict) else ""
    # What the target sent: printable and short before it goes into any reason.
    return clean(kind.removeprefix(PROBLEM), 100) if isinstance(kind, str) else ""


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        if value.isascii() and value.isdigit():
            seconds = float(value)
        else:
            seconds = max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(seconds, LONGEST_RETRY_AFTER)


class AcmeProbe:
    check = "acme"

    def __init__(
        self,
        settings: AcmeCheck,
        clock: Callable[[], float] = time.time,
        http: HttpClient | None = None,
        connect_timeout: float | None = None,
        public_name: str | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    ) -> None:
        self.settings = settings
        self.max_retry_after = max_retry_after
        # The name presented for SNI and Host, and required of the certificate and the URLs.
        self.name = settings.server_name or public_name
        self.required = settings.required
        self._clock = clock
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        self.http = http or HttpClient(ca, self.name, connect_timeout)
        self._key = self._load_key()
        self._ari_id = self._load_ari_id()
        self._last_nonce: str | None = None
        self._quiet_until = 0.0  # honour Retry-After: no traffic before this wall-clock time
        try:
            split = urlsplit(settings.directory)
            self._expected = (self.name or split.hostname or "", split.port or 443)
        except ValueError as e:  # "https://[": Invalid IPv6 URL; a port that is no number
            raise ProbeSetupError(f"acme.directory {settings.directory!r}: {e}") from None
        self._directory_what = (
            f"directory (as clients reach {self.name})" if self.name else "directory"
        )

    def _load_key(self) -> jws.SigningKey | None:
        if self.settings.account_key is None:
            return None
        try:
            return jws.load_signing_key(self.settings.account_key.read_bytes())
        except (OSError, ValueError, TypeError) as e:
            raise ProbeSetupError(f"acme.account_key {self.settings.account_key}: {e}") from None

    def _load_ari_id(self) -> str | None:
        path = self.settings.renewal_info_cert
        if path is None:
            return None
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        except (OSError, ValueError, x509.ExtensionNotFound) as e:
            raise ProbeSetupError(f"acme.renewal_info_cert {path}: {e}") from None
        if aki.key_identifier is None:
            raise ProbeSetupError(f"acme.renewal_info_cert {path}: no AKI key identifier")
        serial = cert.serial_number
        serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # DER INTEGER octets
        return f"{jws.b64url(aki.key_identifier)}.{jws.b64url(serial_der)}"

    # ------------------------------------------------------------------ the probe

    def run(self, deadline: float) -> ProbeResult:
        """Probe once; return by `deadline` (time.monotonic()) whatever the target does."""
        start, now = time.monotonic(), self._clock()
        if now < self._quiet_until:
            wait = self._quiet_until - now
            return ProbeResult(
                self.check,
                Outcome.OVERLOADED,
                f"overloaded: waiting {wait:.0f}s more as Retry-After asked"
                f" (honoured up to {self.max_retry_after:.0f}s)",
                0.0,
                now,
                retry_after=wait,
            )
        try:
            return self._probe(deadline, start, now)
        except Exception as e:  # a bug of ours, or a case not foreseen: a result all the same
            log.warning("probe_crashed check=acme error=%s", type(e).__name__, exc_info=True)
            return ProbeResult.crashed(self.check, e, now, time.monotonic() - start)

    def _probe(self, deadline: float, start: float, now: float) -> ProbeResult:
        details: dict[str, Any] = {}
        warnings: list[str] = []
        tls_days: list[float] = []
        try:
            with self.http.scope(deadline):  # one deadline, one keep-alive connection
                directory = self._directory(deadline, details, tls_days, warnings)
                self._nonce(directory, deadline, details, warnings)
                if self._key is not None:
                    self._account(directory, deadline, details)
                if self._ari_id is not None:
                    self._renewal_info(directory, deadline, details)
            outcome, reason = (
                Outcome.HEALTHY,
                "directory, nonce"
                + "".join(f", {k}" for k in ("account", "renewal_info") if k in details)
                + " ok",
            )
        except ProbeFailed as stop:
            outcome, reason = stop.outcome, stop.reason
            details.update(stop.details)
        tls_left = min(tls_days) if tls_days else None
        if tls_left is not None and tls_left < self.settings.tls_warn_days:
            warnings.append(f"TLS certificate expires in {tls_left:.1f} days")
        retry_after = details.get("retry_after")
        if outcome is Outcome.OVERLOADED and retry_after:
            # Honoured up to the cap: "Retry-After: 99999999999" must not end probing.
            self._quiet_until = now + min(retry_after, self.max_retry_after)
        return ProbeResult(
            self.check,
            outcome,
            reason,
            time.monotonic() - start,
            now,
            details,
            tuple(warnings),
            tls_days_left=tls_left,
            retry_after=retry_after,
        )

    def _on_probed_host(self, url: str) -> str:
        """Send follow-up requests to the instance probed, not wherever its URLs point.

        With a public name the directory's URLs name the public host, which DNS may resolve to
        another instance (the active one); a URL naming some other host is a warning, and the
        instance probed is still the one to ask. The name stays in SNI and Host.
        """
        probed = urlsplit(self.settings.directory)
        split = urlsplit(url)
        if (split.scheme, split.netloc) == (probed.scheme, probed.netloc):
            return url
        return split._replace(scheme=probed.scheme, netloc=probed.netloc).geturl()

    def _exchange(
        self,
        method: str,
        url: str,
        deadline: float,
        what: str,
        tls_days: list[float] | None = None,
        **kwargs: Any,
    ) -> Response:
        response = self.http.fetch(
            method, self._on_probed_host(url), deadline, SMALL_CAP, what, **kwargs
        )
        if tls_days is not None and response.peer_cert is not None:
            left = response.peer_cert.not_valid_after_utc.timestamp() - self._clock()
            tls_days.append(left / 86400)
        return response

    def _classify(self, response: Response, what: str, own_account: bool = False) -> None:
        """Raise ProbeFailed for any answer that is not a success."""
        status, problem = response.status, _problem_type(response)
        retry = retry_after_seconds(response.header("Retry-After"), self._clock())
        detail = {"status": status, "problem": problem or None, "retry_after": retry}
        if status == 503 and problem == "rateLimited":
            raise ProbeFailed(
                Outcome.OVERLOADED, f"{what}: 503 rateLimited (service busy)", **detail
            )
        if status == 429 or (own_account and problem == "rateLimited"):
            raise ProbeFailed(
                Outcome.ERROR, f"{what}: the probe itself is rate limited ({status})", **detail
            )
        if status >= 500 or problem == "serverInternal":
            fail(f"{what}: {status} {problem or 'server error'}", **detail)
        if not 200 <= status < 300:
            fail(f"{what}: unexpected status {status} {problem}".rstrip(), **detail)

    def _directory(
        self,
        deadline: float,
        details: dict[str, Any],
        tls_days: list[float],
        warnings: list[str],
    ) -> dict[str, Any]:
        try:
            response = self._exchange(
                "GET", self.settings.directory, deadline, "directory", tls_days
            )
        except ProbeFailed as e:
            if self.name and "TLS verification failed" in e.reason:
                fail(f"{e.reason}: clients reaching it as {self.name} would fail the same way")
            raise
        self._classify(response, "directory")
        if response.status != 200:
            fail(f"directory: status {response.status}, not 200", status=response.status)
        try:
            directory = json.loads(response.body)
        except ValueError:
            fail("directory: not JSON", status=200)
        if not isinstance(directory, dict):
            fail(f"directory: a JSON {type(directory).__name__}, not an object")
        missing = [key for key in REQUIRED if key not in directory]
        if missing:
            fail(f"directory: missing {', '.join(missing)}")
        for key in RESOURCES:
            if key in directory:
                self._check_url(key, directory[key], warnings)
        details["directory_keys"] = sorted(k for k in directory if isinstance(k, str))
        return directory

    def _check_url(self, key: str, value: object, warnings: list[str]) -> None:
        if not isinstance(value, str):
            fail(f"directory: {key} is not a URL string")
        try:
            split = urlsplit(value)
            port = split.port or 443
        except ValueError:  # "https://[", a port that is no number
            fail(f"directory: {key} is not a valid URL: {value!r}")
        if split.scheme != "https":
            fail(f"directory: {key} is {value!r}: ACME is https only (RFC 8555 §6.1)")
        if (split.hostname or "", port) != self._expected:
            host, expected_port = self._expected
            problem = (
                f"directory: {key} points to {value!r}, not https://{host}:{expected_port}: "
                "clients would be sent there"
            )
            if self.settings.strict_urls:
                fail(problem)
            warnings.append(problem)

    def _nonce(
        self,
        directory: dict[str, Any],
        deadline: float,
        details: dict[str, Any],
        warnings: list[str],
    ) -> None:
        response = self._exchange("HEAD", directory["newNonce"], deadline, "newNonce")
        self._classify(response, "newNonce")
        if response.status != 200:
            fail(f"newNonce: HEAD answered {response.status}, not 200", status=response.status)
        nonce = response.header("Replay-Nonce") or ""
        if not NONCE.fullmatch(nonce):  # `$` would let a trailing newline through
            fail("newNonce: no well-formed Replay-Nonce header")
        if nonce == self._last_nonce:
            fail("newNonce: the same nonce twice in a row")
        self._last_nonce = nonce
        if "no-store" not in (response.header("Cache-Control") or ""):
            warnings.append("newNonce: Cache-Control lacks no-store (RFC 8555 §7.2)")
        details["nonce_ok"] = True

    def _account(self, directory: dict[str, Any], deadline: float, details: dict[str, Any]) -> None:
        assert self._key is not None
        url = directory["newAccount"]
        nonce = self._last_nonce or ""
        for attempt in (1, 2):
            body = jws.sign(self._key, url, nonce, {"onlyReturnExisting": True})
            response = self._exchange(
                "POST",
                url,
                deadline,
                "account",
                data=body,
                headers={"Content-Type": "application/jose+json"},
            )
            problem = _problem_type(response)
            if problem == "badNonce" and attempt == 1:
                nonce = response.header("Replay-Nonce") or ""
                continue
            if problem == "accountDoesNotExist":
                details["account"] = "absent"  # the database answered: it does not know us
                return
            self._classify(response, "account", own_account=True)
            details["account"] = "exists"
            details["account_url"] = response.header("Location")
            return
        fail("account: badNonce twice")

    def _renewal_info(
        self, directory: dict[str, Any], deadline: float, details: dict[str, Any]
    ) -> None:
        base = directory.get("renewalInfo")
        if not isinstance(base, str):
            details["renewal_info"] = "not offered"
            return
        url = f"{base.rstrip('/')}/{self._ari_id}"
        response = self._exchange("GET", url, deadline, "renewalInfo")
        if response.status == 404:
            details["renewal_info"] = "unknown certificate"  # the database answered
            return
        self._classify(response, "renewalInfo")
        try:
            document = json.loads(response.body)
            window = document["suggestedWindow"]
            details["renewal_info"] = {"start": window["start"], "end": window["end"]}
        except (ValueError, KeyError, TypeError):
            fail("renewalInfo: no suggestedWindow in the answer")
