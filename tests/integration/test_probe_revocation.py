"""OCSP against `openssl ocsp` for a Pebble intermediate, and CRLs made by `openssl ca`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from dnsfailover.config.models import CrlCheck, OcspCheck
from dnsfailover.probes.crl import CrlProbe
from dnsfailover.probes.ocsp import OcspProbe
from dnsfailover.results import Outcome, ProbeResult
from lab import Lab
from lab.ocsp import OcspResponder

GOOD, REVOKED, UNKNOWN = 0x1234, 0x5678, 0x9ABC


def run(probe: OcspProbe | CrlProbe, timeout: float = 3.0) -> ProbeResult:
    started = time.monotonic()
    result = probe.run(time.monotonic() + timeout)
    assert time.monotonic() - started < timeout + 0.25
    return result


@pytest.fixture
def responder(lab: Lab, isolated_network: None, request: pytest.FixtureRequest) -> OcspResponder:
    options: dict[str, Any] = getattr(request, "param", {})
    pebble = lab.pebble()
    server = lab.ocsp_for(pebble, **options)
    server.add(GOOD)
    server.add(REVOKED, revoked_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    return server


def ocsp_probe(responder: OcspResponder, serial: int, **settings: Any) -> OcspProbe:
    return OcspProbe(OcspCheck.model_validate({
        "url": responder.url, "issuer": str(responder.issuer_cert), "serial": hex(serial),
        **settings,
    }))  # fmt: skip


@pytest.mark.parametrize(
    "responder",
    [{}, {"delegated": True}],
    ids=["signed_by_issuer", "signed_by_delegated_responder"],
    indirect=True,
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_good_answer_verifies_with_runway(responder: OcspResponder, method: str) -> None:
    result = run(ocsp_probe(responder, GOOD, method=method))
    assert result.outcome is Outcome.HEALTHY, result.reason
    assert result.details["cert_status"] == "good"
    assert result.details["method"] == method.upper()
    # nextUpdate = thisUpdate + 60 min, in whole seconds; the probe counts from its own start,
    # which can be up to a second before the responder's thisUpdate.
    assert result.runway is not None and 58 * 60 < result.runway <= 60 * 60 + 1


def test_revoked_is_unhealthy_unless_expected(responder: OcspResponder) -> None:
    plain = run(ocsp_probe(responder, REVOKED))
    assert plain.outcome is Outcome.UNHEALTHY
    assert plain.reason == "certificate status is revoked, expected good"
    canary = run(ocsp_probe(responder, REVOKED, expect="revoked"))
    assert canary.outcome is Outcome.HEALTHY, canary.reason


def test_unknown_serial_is_unhealthy(responder: OcspResponder) -> None:
    result = run(ocsp_probe(responder, UNKNOWN))
    assert result.outcome is Outcome.UNHEALTHY
    assert result.reason == "certificate status is unknown, expected good"


@pytest.mark.parametrize("responder", [{"next_update_minutes": None}], indirect=True)
def test_without_next_update_is_healthy_with_a_warning(responder: OcspResponder) -> None:
    result = run(ocsp_probe(responder, GOOD))
    assert result.outcome is Outcome.HEALTHY
    assert result.runway is None
    assert any("no nextUpdate" in w for w in result.warnings)


def test_short_runway_warns(responder: OcspResponder) -> None:
    result = run(ocsp_probe(responder, GOOD, min_runway="2h"))
    assert result.outcome is Outcome.HEALTHY
    assert any("under min_runway" in w for w in result.warnings)


def test_nonce_is_echoed_and_checked(responder: OcspResponder) -> None:
    probe = ocsp_probe(responder, GOOD)
    probe._send_nonce = True
    result = run(probe)
    assert result.outcome is Outcome.HEALTHY, result.reason


def test_answer_signed_for_another_issuer_is_refused(lab: Lab, responder: OcspResponder) -> None:
    other = lab.ocsp_for(lab.pebble("other"))
    other.add(GOOD)
    probe = OcspProbe(OcspCheck.model_validate({
        "url": other.url, "issuer": str(responder.issuer_cert), "serial": hex(GOOD)}))  # fmt: skip
    result = run(probe)
    assert result.outcome is Outcome.UNHEALTHY
    # openssl answers with the CertID asked about, signed by its own issuer's key.
    assert result.reason == "the responder certificate was not issued by the issuer"


def test_responder_down_is_unhealthy(responder: OcspResponder) -> None:
    responder.stop()
    result = run(ocsp_probe(responder, GOOD))
    assert result.outcome is Outcome.UNHEALTHY
    assert result.reason == "cannot connect: Connection refused"


# ----------------------------------------------------------------------------- CRL


def crl_probe(url: str, issuer: Path, **settings: Any) -> CrlProbe:
    return CrlProbe(CrlCheck.model_validate({"url": url, "issuer": str(issuer), **settings}))


def test_crl_from_openssl_ca_is_healthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    ca.revoke(0x42)
    ca.revoke(0x43)
    url = web.url("1.crl")
    ca.gencrl(web.root / "1.crl", days=7, idp_url=url)
    result = run(crl_probe(url, ca.cert))
    assert result.outcome is Outcome.HEALTHY, result.reason
    assert result.details["entries"] == 2
    assert result.runway is not None and 6.9 * 86400 < result.runway <= 7 * 86400


def test_pem_crl_without_idp_is_healthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    ca.gencrl(web.root / "2.crl", days=2)
    result = run(crl_probe(web.url("2.pem"), ca.cert))
    assert result.outcome is Outcome.HEALTHY, result.reason
    assert result.details["entries"] == 0


def test_tampered_crl_is_unhealthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    ca.revoke(0x42)
    ca.gencrl(web.root / "1.crl", days=7)
    data = bytearray((web.root / "1.crl").read_bytes())
    data[-10] ^= 0xFF  # inside the signature
    (web.root / "1.crl").write_bytes(bytes(data))
    result = run(crl_probe(web.url("1.crl"), ca.cert))
    assert result.outcome is Outcome.UNHEALTHY
    assert result.reason in {
        "the CRL signature does not verify with the issuer's key",
        "the answer is not a CRL (DER or PEM)",
    }


def test_crl_signed_by_another_ca_is_unhealthy(lab: Lab) -> None:
    ours, theirs, web = lab.crl_ca("ours"), lab.crl_ca("theirs"), lab.web()
    theirs.gencrl(web.root / "1.crl", days=7)
    result = run(crl_probe(web.url("1.crl"), ours.cert))
    assert result.outcome is Outcome.UNHEALTHY
    assert result.reason == "issued by CN=theirs, not the configured issuer"


def test_crl_runway_under_the_margin_is_unhealthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    ca.gencrl(web.root / "1.crl", days=1)
    result = run(crl_probe(web.url("1.crl"), ca.cert, min_runway="2d"))
    assert result.outcome is Outcome.UNHEALTHY
    assert "under min_runway" in result.reason
    assert result.runway is not None and result.runway < 86400


def test_crl_served_from_another_url_than_its_idp_is_unhealthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    ca.gencrl(web.root / "1.crl", days=7, idp_url="http://crl.example.test/1.crl")
    result = run(crl_probe(web.url("1.crl"), ca.cert))
    assert result.outcome is Outcome.UNHEALTHY
    assert "does not name" in result.reason


def test_crl_over_the_size_cap_or_missing_is_unhealthy(lab: Lab) -> None:
    ca, web = lab.crl_ca(), lab.web()
    (web.root / "big.crl").write_bytes(b"0" * 5000)
    big = run(crl_probe(web.url("big.crl"), ca.cert, max_size=1024))
    assert big.outcome is Outcome.UNHEALTHY and "cap" in big.reason
    missing = run(crl_probe(web.url("nope.crl"), ca.cert))
    assert missing.outcome is Outcome.UNHEALTHY and missing.reason == "HTTP 404"
