"""The ACME probe against real Pebble instances and a hostile HTTPS server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from dnsfailover.config.models import AcmeCheck
from dnsfailover.probes import jws
from dnsfailover.probes.acme import AcmeProbe
from dnsfailover.results import Outcome
from lab import Lab
from lab.pebble import Pebble
from lab.tls import write_key

TIMEOUT = 1.0


def probe(directory: str, lab: Lab, **settings: Any) -> AcmeProbe:
    return AcmeProbe(AcmeCheck.model_validate(
        {"directory": directory, "ca_bundle": str(lab.tls.cert_path), **settings}
    ))  # fmt: skip


def run(acme: AcmeProbe, timeout: float = TIMEOUT) -> Any:
    started = time.monotonic()
    result = acme.run(time.monotonic() + timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + 0.25, f"the probe ran {elapsed:.2f}s past a {timeout}s deadline"
    return result


def test_healthy_pebble(lab: Lab) -> None:
    acme = probe(lab.pebble().directory_url, lab)
    first, second = run(acme), run(acme)
    assert first.outcome is Outcome.HEALTHY, first.reason
    assert second.outcome is Outcome.HEALTHY, second.reason
    assert first.reason == "directory, nonce ok"
    assert 29 < first.tls_days_left < 31
    assert any("no-store" in w for w in first.warnings)  # Pebble sends no-cache, not no-store


def test_killed_pebble_is_unhealthy_at_once(lab: Lab) -> None:
    pebble = lab.pebble()
    acme = probe(pebble.directory_url, lab)
    pebble.kill()
    result = run(acme)
    assert result.outcome is Outcome.UNHEALTHY
    assert result.reason.startswith("directory: cannot connect")
    assert result.latency < 0.5


def test_frozen_pebble_is_unhealthy_within_the_deadline(lab: Lab) -> None:
    pebble = lab.pebble()
    acme = probe(pebble.directory_url, lab)
    pebble.freeze()
    try:
        result = run(acme)
    finally:
        pebble.resume()
    assert result.outcome is Outcome.UNHEALTHY
    assert "deadline" in result.reason or "timed out" in result.reason


def test_connect_timeout_cuts_a_hang_in_the_tls_handshake_short(lab: Lab) -> None:
    """A frozen host's kernel completes the TCP handshake; TLS then hangs. connect_timeout
    bounds TCP connect + TLS handshake, so the probe fails after it, not after the timeout."""
    pebble = lab.pebble()
    settings = AcmeCheck.model_validate(
        {"directory": pebble.directory_url, "ca_bundle": str(lab.tls.cert_path)}
    )
    acme = AcmeProbe(settings, connect_timeout=0.25)
    pebble.freeze()
    try:
        result = run(acme, timeout=3.0)
    finally:
        pebble.resume()
    assert result.outcome is Outcome.UNHEALTHY, result.reason
    assert result.latency < 1.0, result.latency  # 0.25 s, not the 3 s timeout
    assert "timed out" in result.reason or "cannot connect" in result.reason, result.reason
    assert run(acme).outcome is Outcome.HEALTHY  # thawed: the short bound does not hurt


def _register(pebble: Pebble, lab: Lab, key_path: Path) -> None:
    directory = pebble.get_directory()
    nonce = requests.head(str(directory["newNonce"]), verify=str(lab.tls.cert_path),
                          timeout=5).headers["Replay-Nonce"]  # fmt: skip
    key = jws.load_signing_key(key_path.read_bytes())
    body = jws.sign(key, str(directory["newAccount"]), nonce, {"termsOfServiceAgreed": True})
    response = requests.post(str(directory["newAccount"]), data=body, timeout=5,
                             headers={"Content-Type": "application/jose+json"},
                             verify=str(lab.tls.cert_path))  # fmt: skip
    assert response.status_code == 201, response.text


def test_account_check_tells_which_instance_knows_the_probe_account(
    lab: Lab, tmp_path: Path
) -> None:
    key_path = tmp_path / "probe-account.pem"
    write_key(ec.generate_private_key(ec.SECP256R1()), key_path)
    primary, standby = lab.pebble("ca-a"), lab.pebble("ca-b")
    _register(primary, lab, key_path)
    on_primary = run(probe(primary.directory_url, lab, account_key=str(key_path)), timeout=3)
    on_standby = run(probe(standby.directory_url, lab, account_key=str(key_path)), timeout=3)
    assert on_primary.outcome is Outcome.HEALTHY, on_primary.reason
    assert on_primary.details["account"] == "exists"
    assert on_primary.details["account_url"].startswith(primary.base_url)
    assert on_standby.outcome is Outcome.HEALTHY, on_standby.reason
    assert on_standby.details["account"] == "absent"  # the standby has its own database
    assert on_primary.reason == "directory, nonce, account ok"


@pytest.mark.parametrize(
    ("path", "outcome", "reason"),
    [
        ("/dir", Outcome.HEALTHY, "directory, nonce ok"),
        ("/invalid-json/dir", Outcome.UNHEALTHY, "directory: not JSON"),
        ("/array/dir", Outcome.UNHEALTHY, "directory: a JSON list, not an object"),
        ("/missing-keys/dir", Outcome.UNHEALTHY, "directory: missing newAccount, newOrder"),
        (
            "/huge/dir",
            Outcome.UNHEALTHY,
            "directory: body of 10485762 bytes is over the 65536-byte cap",
        ),
        ("/trickle/dir", Outcome.UNHEALTHY, "directory: no complete answer before the deadline"),
        ("/hang/dir", Outcome.UNHEALTHY, "directory: no complete answer before the deadline"),
        ("/500/dir", Outcome.UNHEALTHY, "directory: 500 serverInternal"),
        ("/503/dir", Outcome.OVERLOADED, "directory: 503 rateLimited (service busy)"),
        ("/429/dir", Outcome.ERROR, "directory: the probe itself is rate limited (429)"),
        ("/same-nonce/dir", Outcome.HEALTHY, "directory, nonce ok"),
        ("/nonce-500/dir", Outcome.UNHEALTHY, "newNonce: 500"),  # HEAD: no problem body
        ("/no-such-path", Outcome.UNHEALTHY, "directory: unexpected status 404"),
    ],
)
def test_hostile_server(lab: Lab, path: str, outcome: Outcome, reason: str) -> None:
    server = lab.hostile()
    result = run(probe(server.url(path), lab))
    assert result.outcome is outcome, result.reason
    assert result.reason.startswith(reason), result.reason


def test_urls_naming_another_host_warn_or_fail_with_strict_urls(lab: Lab) -> None:
    """A directory whose URLs name another host (an internal name): clients would be sent
    there. A warning by default, and the nonce is still fetched from the instance probed;
    unhealthy with strict_urls."""
    server = lab.hostile()
    lenient = run(probe(server.url("/elsewhere/dir"), lab))
    assert lenient.outcome is Outcome.HEALTHY, lenient.reason
    assert any(w.startswith("directory: newNonce points to 'https://acme.elsewhere.example/nonce'")
               and w.endswith("clients would be sent there") for w in lenient.warnings)  # fmt: skip
    strict = run(probe(server.url("/elsewhere/dir"), lab, strict_urls=True))
    assert strict.outcome is Outcome.UNHEALTHY
    assert strict.reason.startswith("directory: newNonce points to 'https://acme.elsewhere")


def test_as_a_client_the_certificate_must_cover_the_public_name(lab: Lab) -> None:
    """The probe connects to the instance but presents the public name: an instance whose
    certificate lacks it would break every client the moment the name moved to it."""
    covered = lab.pebble("ca-a")
    uncovered = lab.pebble("ca-c", public_names=())
    settings = {"ca_bundle": str(lab.tls.cert_path)}
    good = AcmeProbe(AcmeCheck.model_validate({"directory": covered.directory_url, **settings}),
                     public_name="acme.example.test")  # fmt: skip
    result = run(good)
    assert result.outcome is Outcome.HEALTHY, result.reason
    assert not any("points to" in w for w in result.warnings)  # URLs name the public host
    bad = AcmeProbe(AcmeCheck.model_validate({"directory": uncovered.directory_url, **settings}),
                    public_name="acme.example.test")  # fmt: skip
    result = run(bad)
    assert result.outcome is Outcome.UNHEALTHY
    assert "TLS verification failed" in result.reason
    assert "hostname 'acme.example.test' doesn't match" in result.reason, result.reason
    assert result.reason.endswith(
        "clients reaching it as acme.example.test would fail the same way"
    )
    own_name = AcmeProbe(AcmeCheck.model_validate(
        {"directory": uncovered.directory_url, "as_client": False, **settings}))  # fmt: skip
    assert run(own_name).outcome is Outcome.HEALTHY  # by its own name it is fine


def test_the_same_nonce_twice_is_unhealthy(lab: Lab) -> None:
    acme = probe(lab.hostile().url("/same-nonce/dir"), lab)
    assert run(acme).outcome is Outcome.HEALTHY
    second = run(acme)
    assert second.outcome is Outcome.UNHEALTHY
    assert second.reason == "newNonce: the same nonce twice in a row"


def test_overloaded_honours_retry_after(lab: Lab) -> None:
    server = lab.hostile()
    acme = probe(server.url("/503/dir"), lab)
    first = run(acme)
    assert first.outcome is Outcome.OVERLOADED and first.retry_after == 30
    server.routes.clear()  # any further request would now get a 404
    second = run(acme)
    assert second.outcome is Outcome.OVERLOADED
    assert "Retry-After" in second.reason and second.latency == 0


def test_redirect_to_another_host_is_refused(lab: Lab) -> None:
    server = lab.hostile()
    server.routes["/moved/dir"] = lambda h: (
        h.send_response(302),
        h.send_header("Location", server.url("/dir", host="localhost")),
        h.send_header("Content-Length", "0"),
        h.end_headers(),
    )
    result = run(probe(server.url("/moved/dir"), lab))
    assert result.outcome is Outcome.UNHEALTHY
    assert "redirect to another host refused" in result.reason


@pytest.mark.parametrize(
    ("cert", "words"),
    [
        ({"valid_days": -1, "not_before_days": -30}, "certificate has expired"),
        ({"names": ("wrong.example",)}, "IP address mismatch"),
    ],
    ids=["expired", "wrong_name"],
)
def test_bad_tls_certificate_is_unhealthy(lab: Lab, cert: dict[str, Any], words: str) -> None:
    server = lab.hostile(**cert)
    result = run(probe(server.url("/dir"), lab))
    assert result.outcome is Outcome.UNHEALTHY
    assert "TLS verification failed" in result.reason and words in result.reason


def test_server_name_probes_by_ip_with_the_public_name(lab: Lab) -> None:
    server = lab.hostile(names=("acme.example.test",))
    by_ip = run(probe(server.url("/dir"), lab))
    assert by_ip.outcome is Outcome.UNHEALTHY  # the certificate names acme.example.test
    assert "TLS verification failed" in by_ip.reason
    # SNI and Host carry the public name; the directory's URLs (built from Host) name it too,
    # and the nonce is still fetched from the instance probed (it does not resolve anyway).
    named = run(probe(server.url("/dir"), lab, server_name="acme.example.test"))
    assert named.outcome is Outcome.HEALTHY, named.reason


def test_tls_expiry_horizon_warns(lab: Lab) -> None:
    server = lab.hostile(valid_days=2.5)
    result = run(probe(server.url("/dir"), lab, tls_warn_days=14))
    assert result.outcome is Outcome.HEALTHY
    assert any(w.startswith("TLS certificate expires in 2.") for w in result.warnings)


@pytest.mark.parametrize(("size", "ok"), [(64 * 1024, True), (64 * 1024 + 1, False)])
def test_directory_size_cap_at_its_edge(lab: Lab, size: int, ok: bool) -> None:
    from lab.hostile import directory

    server = lab.hostile()

    def padded(handler: Any) -> None:
        body = json.dumps(directory(f"https://{handler.headers['Host']}")).encode()
        body = body[:-1] + b" " * (size - len(body)) + b"}"
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server.routes["/padded/dir"] = padded
    result = run(probe(server.url("/padded/dir"), lab))
    assert (result.outcome is Outcome.HEALTHY) is ok, result.reason


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_a_hanging_server_is_cut_at_the_deadline_exactly(lab: Lab, timeout: float) -> None:
    result = run(probe(lab.hostile().url("/hang/dir"), lab), timeout=timeout)
    assert result.outcome is Outcome.UNHEALTHY
    assert timeout - 0.05 <= result.latency <= timeout + 0.2


@pytest.mark.parametrize("keep_alive", [True, False], ids=["kept_alive", "closed"])
def test_a_nonce_that_hangs_after_a_good_directory_is_cut_at_the_deadline(
    lab: Lab, keep_alive: bool
) -> None:
    """The deadline covers the whole probe, on the connection the directory came over too."""
    result = run(probe(lab.hostile(keep_alive=keep_alive).url("/nonce-hang/dir"), lab))
    assert result.outcome is Outcome.UNHEALTHY
    assert "newNonce" in result.reason and "deadline" in result.reason
    assert TIMEOUT - 0.05 <= result.latency <= TIMEOUT + 0.2


def test_one_probe_one_connection_and_none_kept_after_it(lab: Lab) -> None:
    server = lab.hostile(keep_alive=True)
    acme = probe(server.url("/dir"), lab)
    first = run(acme)
    assert first.outcome is Outcome.HEALTHY, first.reason
    assert server.connections == 1  # directory and newNonce over one TLS connection
    second = run(acme)
    assert second.outcome is Outcome.HEALTHY, second.reason
    assert server.connections == 2  # a new probe never reuses the last probe's connection


def test_pinned_and_plain_clients_sharing_a_bundle_both_check_the_name(lab: Lab) -> None:
    """Clients with the same CA bundle share one SSLContext; a client that pins a server name
    must not switch hostname checking off for one that does not."""
    server = lab.hostile(names=("wrong.example.test",))
    pinned = probe(server.url("/dir"), lab, server_name="wrong.example.test")
    plain = probe(server.url("/dir"), lab)
    assert run(pinned).outcome is Outcome.HEALTHY
    result = run(plain)
    assert result.outcome is Outcome.UNHEALTHY
    assert "127.0.0.1" in result.reason or "mismatch" in result.reason, result.reason
