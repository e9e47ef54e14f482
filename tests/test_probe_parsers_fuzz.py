"""Random bytes in place of a directory, a nonce answer, an OCSP response and a CRL; random
problem types, resource URLs and Retry-After values: the probes return a result every time,
never an exception, and its reason is printable and bounded (hypothesis)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from dnsfailover.config.models import AcmeCheck, CrlCheck, OcspCheck
from dnsfailover.probes.acme import AcmeProbe
from dnsfailover.probes.crl import CrlProbe
from dnsfailover.probes.http import HttpClient, Response
from dnsfailover.probes.ocsp import OcspProbe
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import LIMIT

BASE = "https://ca.example.test"
DIRECTORY = f"{BASE}/dir"


class CannedHttp(HttpClient):
    """Answers every request with the same status, headers and body (no network); the
    translation of transport errors (`fetch`) is the real one."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.status, self.body = status, body
        self.headers = CaseInsensitiveDict(headers or {})

    def request(self, method: str, url: str, deadline: float, max_bytes: int, **_: Any) -> Response:
        return Response(self.status, self.headers, self.body[:max_bytes], url, None)

    @contextlib.contextmanager
    def scope(self, deadline: float) -> Iterator[None]:
        yield


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp_path_factory.mktemp("fuzz") / "issuer.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["newNonce", "newAccount", "newOrder", "meta", "x"]),
                      children, max_size=5),
    max_leaves=12,
)  # fmt: skip
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=st.binary(max_size=2048) | json_like.map(lambda v: repr(v).encode()),
       status=st.sampled_from([200, 204, 301, 400, 429, 500, 503]))  # fmt: skip
def test_directory_bytes_give_a_result(body: bytes, status: int) -> None:
    probe = AcmeProbe(AcmeCheck(directory=DIRECTORY), http=CannedHttp(status, body))  # type: ignore[arg-type]
    result = probe.run(float("inf"))
    assert isinstance(result.outcome, Outcome) and result.reason
    assert_clean(result)


def assert_clean(result: ProbeResult) -> None:
    assert result.reason.isprintable() and len(result.reason) <= LIMIT, result.reason
    assert all(w.isprintable() and len(w) <= LIMIT for w in result.warnings)
    assert result.outcome is not Outcome.ERROR or "crashed" not in result.reason, result.reason


@FUZZ
@given(kind=st.text(max_size=300) | st.just("bad\x00" + "x" * 200_000),
       status=st.sampled_from([400, 403, 429, 500, 503]))  # fmt: skip
def test_any_problem_type_gives_a_clean_reason(kind: str, status: int) -> None:
    body = json.dumps({"type": f"urn:ietf:params:acme:error:{kind}", "detail": kind}).encode()
    probe = AcmeProbe(AcmeCheck(directory=DIRECTORY), http=CannedHttp(status, body))  # type: ignore[arg-type]
    assert_clean(probe.run(float("inf")))


@FUZZ
@given(url=st.text(max_size=80) | st.sampled_from(["https://[", "https://[::1", "https://h:x/",
                                                    "https://h:99999/", "http://\x00/"]),
       key=st.sampled_from(["newNonce", "newAccount", "newOrder", "revokeCert", "renewalInfo"]))  # fmt: skip
def test_any_resource_url_gives_a_result(url: str, key: str) -> None:
    document = {"newNonce": f"{BASE}/n", "newAccount": f"{BASE}/a", "newOrder": f"{BASE}/o"}
    body = json.dumps({**document, key: url}).encode()
    http = CannedHttp(200, body, {"Replay-Nonce": "bm9uY2U", "Cache-Control": "no-store"})
    result = AcmeProbe(AcmeCheck(directory=DIRECTORY), http=http).run(float("inf"))  # type: ignore[arg-type]
    assert_clean(result)


@FUZZ
@given(value=st.text(max_size=40) | st.sampled_from(["99999999999", "9" * 400, "²", "-5",
                                                      "Wed, 21 Oct 2099 07:28:00 GMT"]))  # fmt: skip
def test_any_retry_after_quiets_the_probe_at_most_the_cap(value: str) -> None:
    body = b'{"type": "urn:ietf:params:acme:error:rateLimited"}'
    http = CannedHttp(503, body, {"Retry-After": value})
    now = [1000.0]
    probe = AcmeProbe(AcmeCheck(directory=DIRECTORY), lambda: now[0], http, max_retry_after=20)  # type: ignore[arg-type]
    assert probe.run(float("inf")).outcome is Outcome.OVERLOADED
    now[0] += 20.0
    http.status, http.body = 200, b"not json"
    assert probe.run(float("inf")).reason == "directory: not JSON"  # asked again after the cap


@FUZZ
@given(nonce=st.text(max_size=64), cache=st.text(max_size=30))
def test_nonce_headers_give_a_result(nonce: str, cache: str) -> None:
    directory = (b'{"newNonce": "https://ca.example.test/n", "newAccount": '
                 b'"https://ca.example.test/a", "newOrder": "https://ca.example.test/o"}')  # fmt: skip
    http = CannedHttp(200, directory, {"Replay-Nonce": nonce, "Cache-Control": cache})
    probe = AcmeProbe(AcmeCheck(directory=DIRECTORY), http=http)  # type: ignore[arg-type]
    result = probe.run(float("inf"))
    well_formed = bool(nonce) and all(c.isascii() and (c.isalnum() or c in "-_") for c in nonce)
    assert result.outcome is (Outcome.HEALTHY if well_formed else Outcome.UNHEALTHY)


@FUZZ
@given(body=st.binary(max_size=4096))
def test_ocsp_bytes_give_a_result(issuer: Path, body: bytes) -> None:
    settings_ = OcspCheck(url="http://ocsp.example.test/", issuer=issuer, serial="0x1234")
    probe = OcspProbe(settings_, http=CannedHttp(200, body))  # type: ignore[arg-type]
    result = probe.run(float("inf"))
    assert result.outcome is Outcome.UNHEALTHY  # random bytes are never a verified answer
    assert_clean(result)


@FUZZ
@given(
    body=st.binary(max_size=4096)
    | st.binary(max_size=2048).map(lambda b: b"-----BEGIN X509 CRL-----\n" + b)
)
def test_crl_bytes_give_a_result(issuer: Path, body: bytes) -> None:
    settings_ = CrlCheck(url="http://crl.example.test/1.crl", issuer=issuer)
    probe = CrlProbe(settings_, http=CannedHttp(200, body))  # type: ignore[arg-type]
    result = probe.run(float("inf"))
    assert result.outcome is Outcome.UNHEALTHY
    assert_clean(result)
