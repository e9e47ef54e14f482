"""Notifications: a bad event never silences the next, hooks see no secret, the webhook follows
no redirect and gives up at its whole-request deadline. Every server binds 127.0.0.1."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dnsfailover import notify
from dnsfailover.config.models import NotifySettings
from dnsfailover.notify import ENV_VALUE_MAX, Notifications, env_value, hook_env

# The hook appends one line per event: its whole environment and the JSON it read on stdin.
HOOK = (
    "import json, os, sys\n"
    "with open(sys.argv[1], 'a') as f:\n"
    "    f.write(json.dumps({'env': dict(os.environ), 'stdin': json.load(sys.stdin)}) + '\\n')\n"
)


class Failures:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.seen = threading.Event()

    def __call__(self, kind: str) -> None:
        self.kinds.append(kind)
        self.seen.set()


def exec_settings(out: Path, env: list[str] | None = None) -> NotifySettings:
    hook: dict[str, Any] = {"argv": [sys.executable, "-c", HOOK, str(out)], "timeout": "30s"}
    if env is not None:
        hook["env"] = env
    return NotifySettings.model_validate({"exec": hook})


def delivered(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def run_events(settings: NotifySettings, *events: dict[str, Any], **kwargs: Any) -> Failures:
    """Send the events and wait until the notify thread has handled every one of them."""
    failures = Failures()
    notifications = Notifications(settings, failures, sleep=lambda s: None, **kwargs)
    for event in events:
        notifications.send(event)
    notifications.close(wait=60)
    return failures


# ----------------------------------------------------------------------------- exec


def test_nul_in_a_reason_is_delivered_and_the_next_event_too(tmp_path: Path) -> None:
    out = tmp_path / "events"
    failures = run_events(
        exec_settings(out),
        {"event": "failover", "service": "acme", "reason": "problem\x00type"},
        {"event": "recovery", "service": "acme", "reason": "ok"},
    )
    events = delivered(out)
    assert [e["env"]["DNSFAILOVER_EVENT"] for e in events] == ["failover", "recovery"]
    assert events[0]["env"]["DNSFAILOVER_REASON"] == "problem\\0type"
    assert events[0]["stdin"]["reason"] == "problem\x00type"  # JSON escapes it
    assert failures.kinds == []


def test_a_200_kb_reason_is_capped_in_the_environment_and_whole_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "events"
    reason = "x" * 200_000
    failures = run_events(
        exec_settings(out),
        {"event": "failover", "service": "acme", "reason": reason},
        {"event": "recovery", "service": "acme", "reason": "ok"},
    )
    first, second = delivered(out)
    assert len(first["env"]["DNSFAILOVER_REASON"]) == ENV_VALUE_MAX
    assert first["env"]["DNSFAILOVER_REASON"].endswith("(200000 characters, truncated)")
    assert first["stdin"]["reason"] == reason
    assert second["env"]["DNSFAILOVER_EVENT"] == "recovery"
    assert failures.kinds == []


def test_a_delivery_that_raises_is_counted_and_the_thread_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "events"
    real_run = subprocess.run
    calls = []

    def run_failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise ValueError("embedded null byte")  # what subprocess raised before sanitising
        return real_run(*args, **kwargs)

    monkeypatch.setattr(notify.subprocess, "run", run_failing_once)
    failures = run_events(
        exec_settings(out),
        {"event": "failover", "service": "acme"},
        {"event": "recovery", "service": "acme"},
    )
    assert failures.kinds == ["exec"]
    assert [e["env"]["DNSFAILOVER_EVENT"] for e in delivered(out)] == ["recovery"]


def test_a_failing_failure_counter_does_not_stop_the_thread(tmp_path: Path) -> None:
    out = tmp_path / "events"
    fails_on_failover = HOOK + "sys.exit(os.environ['DNSFAILOVER_EVENT'] == 'failover')\n"
    settings = NotifySettings.model_validate(
        {"exec": {"argv": [sys.executable, "-c", fails_on_failover, str(out)], "timeout": "30s"}}
    )

    def counter(kind: str) -> None:
        raise RuntimeError("metrics broke")

    notifications = Notifications(settings, counter)
    notifications.send({"event": "failover"})
    notifications.send({"event": "recovery"})
    notifications.close(wait=60)
    assert [e["env"]["DNSFAILOVER_EVENT"] for e in delivered(out)] == ["failover", "recovery"]


def test_the_hook_sees_no_secret_of_the_daemon_unless_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TSIG_SECRET", "c2VjcmV0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("PAGER_TOKEN", "listed")
    out = tmp_path / "events"
    run_events(exec_settings(out, env=["PAGER_TOKEN"]), {"event": "failover", "service": "acme"})
    (event,) = delivered(out)
    env = event["env"]
    assert "TSIG_SECRET" not in env and not any(name.startswith("AWS_") for name in env)
    assert env["PAGER_TOKEN"] == "listed"
    expected = {"PATH", "LANG", "PAGER_TOKEN", "DNSFAILOVER_DRY_RUN"}
    expected |= {f"DNSFAILOVER_{k.upper()}" for k in notify.EVENT_KEYS}
    assert set(env) - {"LC_CTYPE"} == expected  # LC_CTYPE: Python's own locale coercion
    assert "c2VjcmV0" not in json.dumps(event) and "aws-secret" not in json.dumps(event)


def test_a_listed_name_cannot_override_the_event() -> None:
    env = hook_env({"event": "failover"}, ["DNSFAILOVER_EVENT"], {"DNSFAILOVER_EVENT": "forged"})
    assert env["DNSFAILOVER_EVENT"] == "failover"


@pytest.mark.parametrize(
    ("event", "flag", "in_json"),
    [
        pytest.param({"event": "failover", "dry_run": True}, "1", True, id="dry_run_says_1"),
        pytest.param({"event": "failover", "dry_run": False}, "0", False, id="written_says_0"),
        pytest.param({"event": "failover"}, "0", False, id="unmarked_is_written"),
    ],
)
def test_dry_run_is_told_to_the_hook(
    tmp_path: Path, event: dict[str, Any], flag: str, in_json: bool
) -> None:
    out = tmp_path / "events"
    run_events(exec_settings(out), event)
    (seen,) = delivered(out)
    assert seen["env"]["DNSFAILOVER_DRY_RUN"] == flag
    assert seen["stdin"]["dry_run"] is in_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, "", id="none_is_empty"),
        pytest.param("a\x00b", "a\\0b", id="nul_is_spelled_out"),
        pytest.param("\ud800", "?", id="lone_surrogate_is_replaced"),
        pytest.param(42, "42", id="numbers_are_text"),
    ],
)
def test_env_values_are_exec_safe(value: object, expected: str) -> None:
    assert env_value(value) == expected


# ----------------------------------------------------------------------------- webhook


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers POST / with `status` (and a Location to /elsewhere); records every request."""

    status = 200
    requests: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.requests.append((self.path, body))
        self.send_response(self.status if self.path.startswith("/hook") else 200)
        if self.status in (301, 302, 303, 307, 308):
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[http.server.HTTPServer, list[tuple[str, bytes]]]]:
    seen: list[tuple[str, bytes]] = []
    handler = type("Handler", (Recorder,), {"requests": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, seen
    server.shutdown()
    server.server_close()


def webhook(url: str, **extra: Any) -> NotifySettings:
    return NotifySettings.model_validate({"webhook": {"url": url, **extra}})


def test_webhook_posts_the_event_with_its_dry_run_flag(recorder: Any) -> None:
    server, seen = recorder
    url = f"http://127.0.0.1:{server.server_port}/hook?token=t0ken"
    failures = run_events(webhook(url), {"event": "failover", "dry_run": True})
    assert failures.kinds == []
    ((path, body),) = seen
    assert path == "/hook?token=t0ken"
    assert json.loads(body) == {"event": "failover", "dry_run": True}


def test_webhook_does_not_follow_a_redirect(
    recorder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, seen = recorder
    server.RequestHandlerClass.status = 302
    url = f"http://127.0.0.1:{server.server_port}/hook?token=t0ken"
    failures = run_events(webhook(url, retries=3), {"event": "failover"})
    assert [path for path, _ in seen] == ["/hook?token=t0ken"]  # once: a 3xx is not retried
    assert failures.kinds == ["webhook"]
    assert "redirects are not followed" in caplog.text
    assert "t0ken" not in caplog.text


@pytest.fixture
def trickler() -> Iterator[int]:
    """Accepts, reads the request, then sends a status line and one header byte per 50 ms for
    as long as the client listens: each read returns in time, the answer never ends."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not stop.wait(0.05):  # the server's pace, not the test waiting
                    conn.sendall(b"a")
            except OSError:
                return  # the client gave up: what the test wants

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()
    thread.join(10)


def test_webhook_deadline_covers_the_whole_request(trickler: int) -> None:
    url = f"http://127.0.0.1:{trickler}/hook"
    started = time.monotonic()
    failures = run_events(webhook(url, timeout="500ms", retries=0), {"event": "failover"})
    elapsed = time.monotonic() - started
    assert failures.kinds == ["webhook"]
    assert elapsed < 5  # a per-read timeout of 500 ms would never have tripped


def test_post_json_raises_the_deadline(trickler: int) -> None:
    context = ssl.create_default_context()
    with pytest.raises(notify.WebhookTimeout, match="no answer within 0.3s"):
        notify.post_json(f"http://127.0.0.1:{trickler}/", b"{}", 0.3, context)


# ----------------------------------------------------------------------------- TLS


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_recorder(
    tmp_path: Path, recorder: Any
) -> Iterator[tuple[str, Path, list[tuple[str, bytes]]]]:
    server, seen = recorder
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield f"https://127.0.0.1:{server.server_port}/hook", cert, seen


def test_webhook_verifies_tls(tls_recorder: Any) -> None:
    url, cert, seen = tls_recorder
    failures = run_events(webhook(url, retries=0), {"event": "failover"})
    assert failures.kinds == ["webhook"]  # self-signed, not in the system store
    assert seen == []
    failures = run_events(webhook(url, ca_bundle=str(cert)), {"event": "failover"})
    assert failures.kinds == []
    assert [path for path, _ in seen] == ["/hook"]
