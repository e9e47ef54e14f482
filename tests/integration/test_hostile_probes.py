"""Hostile instances on loopback, probed directly (not through the daemon): nothing they send
freezes health, raises out of a probe, or leaves a probe unbounded (issue 21).

Each probe is real and talks HTTP(S) to a small server of the lab on 127.0.0.1; the probe's
and the tracker's notion of time is a simulated clock, advanced one interval per run, so a
43-second bound is crossed in milliseconds and no test sleeps.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dnsfailover.config.models import AcmeCheck, Checks, CrlCheck, Instance, OcspCheck
from dnsfailover.errors import ProbeSetupError
from dnsfailover.health import HealthTracker, State
from dnsfailover.probes import build_probes
from dnsfailover.probes.acme import AcmeProbe
from dnsfailover.probes.crl import CrlProbe
from dnsfailover.probes.ocsp import OcspProbe
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import LIMIT
from lab import Lab
from lab.hostile import HostileServer, Issuer, ok_directory, raw

CHECKS = Checks()  # interval 10s, timeout 3s, rise 3, fall 2: bound 43s, Retry-After cap 20s
DETECTION = CHECKS.fall * CHECKS.interval + CHECKS.inconclusive_bound
SERIAL = 0x1234


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def run(probe: AcmeProbe | OcspProbe | CrlProbe) -> ProbeResult:
    """One run, bounded by its real deadline (the target is real)."""
    started = time.monotonic()
    result = probe.run(started + CHECKS.timeout)
    assert time.monotonic() - started < CHECKS.timeout + 0.5
    assert isinstance(result, ProbeResult)
    return result


def acme(server: HostileServer, path: str, lab: Lab, clock: Clock) -> AcmeProbe:
    settings = AcmeCheck.model_validate(
        {"directory": server.url(path), "ca_bundle": str(lab.tls.cert_path)}
    )
    return AcmeProbe(settings, clock, max_retry_after=CHECKS.retry_after_cap)


def assert_clean(reason: str) -> None:
    assert reason.isprintable() and len(reason) <= LIMIT, reason


def test_429_for_ever_is_unhealthy_within_detection_plus_the_bound(lab: Lab) -> None:
    server, clock = lab.hostile(), Clock()
    probe = acme(server, "/dir", lab, clock)
    tracker = HealthTracker()
    tracker.register("svc", "a", "acme", True, CHECKS.inconclusive_bound, now=clock.now)
    for _ in range(CHECKS.rise):
        tracker.observe("svc", "a", run(probe), CHECKS.rise, CHECKS.fall)
        clock.now += CHECKS.interval
    assert tracker.instances("svc", now=clock.now)["a"].state is State.HEALTHY
    server.routes["/dir"] = server.routes["/429/dir"]  # from now on: 429 for ever
    turned, deadline = clock.now, clock.now + DETECTION
    while clock.now <= deadline:
        result = run(probe)
        assert result.outcome is Outcome.ERROR, result.reason  # our probe is rate limited
        _, health = tracker.observe("svc", "a", result, CHECKS.rise, CHECKS.fall)
        if health.state is State.UNHEALTHY:
            break
        clock.now += CHECKS.interval
    assert health.state is State.UNHEALTHY, f"still {health.state} after {clock.now - turned}s"
    assert health.reason.startswith("acme inconclusive for ")
    assert "the probe itself is rate limited (429)" in health.reason
    assert server.hits["/dir"] >= CHECKS.rise + 4  # probing never stopped


def test_retry_after_99999999999_is_honoured_only_up_to_the_cap(lab: Lab) -> None:
    server, clock = lab.hostile(), Clock()
    probe = acme(server, "/503-forever/dir", lab, clock)
    first = run(probe)
    assert first.outcome is Outcome.OVERLOADED and server.hits["/503-forever/dir"] == 1
    clock.now += CHECKS.retry_after_cap - 0.5
    quiet = run(probe)
    assert quiet.outcome is Outcome.OVERLOADED and quiet.latency == 0
    assert server.hits["/503-forever/dir"] == 1  # honoured
    server.routes["/503-forever/dir"] = ok_directory  # the instance recovers
    clock.now += 0.5
    recovered = run(probe)
    assert server.hits["/503-forever/dir"] == 2  # asked again after the cap
    assert recovered.outcome is Outcome.HEALTHY, recovered.reason


def test_ocsp_signed_with_an_unknown_algorithm_is_an_error_result(lab: Lab, tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    server = lab.hostile(tls=False)
    server.routes["/ocsp"] = raw(
        200, issuer.ocsp_with_unknown_algorithm(SERIAL), "application/ocsp-response"
    )
    settings = OcspCheck.model_validate(
        {"url": server.url("/ocsp"), "issuer": str(issuer.path), "serial": hex(SERIAL),
         "method": "post"}
    )  # fmt: skip
    result = run(OcspProbe(settings))
    assert result.outcome is Outcome.ERROR, result.reason
    assert result.reason.startswith("cannot verify the response: Signature algorithm OID")
    assert server.hits["/ocsp"] == 1


def test_503_to_a_plain_http_ocsp_probe_turns_unhealthy_after_the_bound(
    lab: Lab, tmp_path: Path
) -> None:
    issuer, clock = Issuer(tmp_path), Clock()
    server = lab.hostile(tls=False)
    server.routes["/ocsp"] = raw(503, b"busy", "text/plain")
    settings = OcspCheck.model_validate(
        {"url": server.url("/ocsp"), "issuer": str(issuer.path), "serial": hex(SERIAL),
         "method": "post"}
    )  # fmt: skip
    probe = OcspProbe(settings, clock)
    tracker = HealthTracker()
    tracker.register("svc", "a", "ocsp", True, CHECKS.inconclusive_bound, now=clock.now)
    start = clock.now
    while clock.now < start + CHECKS.inconclusive_bound:
        result = run(probe)
        assert result.outcome is Outcome.OVERLOADED, result.reason
        _, health = tracker.observe("svc", "a", result, CHECKS.rise, CHECKS.fall)
        assert health.state is State.UNKNOWN
        clock.now += CHECKS.interval
    _, health = tracker.observe("svc", "a", run(probe), CHECKS.rise, CHECKS.fall)
    assert health.state is State.UNHEALTHY
    assert health.reason.startswith("ocsp inconclusive for 50s: HTTP 503")


def test_a_crl_issuer_of_2_5_mb_is_cleaned_and_capped(lab: Lab, tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    server = lab.hostile(tls=False)
    hostile_name = "evil\x00\x1b[2J" + "x" * 2_500_000
    server.routes["/1.crl"] = raw(200, issuer.crl_with_issuer(hostile_name), "application/pkix-crl")
    settings = CrlCheck.model_validate({"url": server.url("/1.crl"), "issuer": str(issuer.path)})
    result = run(CrlProbe(settings))
    assert result.outcome is Outcome.UNHEALTHY
    assert_clean(result.reason)
    assert result.reason.startswith("issued by O=evil\\00\\x1b[2Jxxx")  # RFC 4514 escapes NUL
    assert "characters, truncated" in result.reason
    assert result.reason.endswith("not the configured issuer")
    assert len(str(result.as_dict())) < 2000


@pytest.mark.parametrize(
    ("path", "starts"),
    [
        pytest.param(
            "/nul-problem/dir",
            "directory: unexpected status 400 badNonce\\x00\\x1b[2J\\x07\\u202e",
            id="nul_and_control_characters_in_a_problem_type",
        ),
        pytest.param(
            "/long-problem/dir",
            "directory: unexpected status 400 xxxx",
            id="a_30_kb_problem_type",
        ),
        pytest.param(
            "/bad-url/dir",
            "directory: newNonce is not a valid URL: 'https://['",
            id="a_resource_url_that_does_not_parse",
        ),
    ],
)
def test_hostile_acme_answers_give_clean_results(lab: Lab, path: str, starts: str) -> None:
    result = run(acme(lab.hostile(), path, lab, Clock()))
    assert result.outcome is Outcome.UNHEALTHY, result.reason
    assert_clean(result.reason)
    assert result.reason.startswith(starts), result.reason
    assert "\x00" not in str(result.as_dict())


def test_a_directory_url_that_does_not_parse_is_a_setup_error() -> None:
    """Config validation refuses it too; the probe does not rely on that."""
    settings = AcmeCheck.model_construct(**{**AcmeCheck(directory="https://x/").__dict__,
                                            "directory": "https://["})  # fmt: skip
    instance = Instance.model_construct(name="a", acme=settings, ocsp=None, crl=None)
    with pytest.raises(ProbeSetupError, match=r"acme\.directory 'https://\[': Invalid IPv6 URL"):
        build_probes(instance)
