"""Notifications on decision events: an `exec` hook and a `webhook`, off the failover path.

Events go into a bounded queue served by one worker thread, so a slow or failing hook never
delays a failover: when the queue is full the event is dropped and counted. Each event is
delivered to each hook inside its own `try`: whatever one delivery raises is logged and
counted, and the thread goes on to the next event. It never dies.

The exec hook gets the event as DNSFAILOVER_* environment variables and as JSON on stdin, and
is killed at its timeout. Its environment is minimal: PATH, LANG, the DNSFAILOVER_* variables
and only the names listed in `notify.exec.env` — never the daemon's own environment, which
holds a TSIG `secret_env` or AWS keys. Each value is made exec-safe: no NUL byte (which no
environment can hold), valid UTF-8, at most ENV_VALUE_MAX characters (one string over 128 KiB
fails the exec with E2BIG). The JSON on stdin carries the event whole.

`DNSFAILOVER_DRY_RUN` is `1` when the event's entry says `"dry_run": true` (nothing was
written: a dry run), `0` otherwise; the JSON of both hooks always carries `"dry_run"`.

The webhook is an HTTP POST of the JSON, retried a bounded number of times. Redirects are not
followed (a 3xx is a failure, not retried). `timeout` bounds the whole request — connect, TLS,
request, status and headers — not each socket operation: a watchdog shuts the socket down at
the deadline, so a server that trickles one byte a second cannot hold the thread. TLS is
verified, against `ca_bundle` when given, else the system trust store. Proxies from the
environment are not used. Resolving the host name counts against the deadline but cannot be
cut short by it: the system resolver's own timeouts (resolv.conf) bound it. Failures are logged
(never the URL: it may hold a token) and counted.
Imports config models only.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import json
import logging
import os
import queue
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from dnsfailover.config.models import ExecHook, NotifySettings, WebhookHook

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
ENV_VALUE_MAX = 4096  # characters per variable; the kernel's cap per string is 128 KiB
EVENT_KEYS = ("event", "service", "from", "to", "rule", "reason", "instance")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
STDERR_TAIL = 200  # bytes of a failing hook's stderr that go into the log
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "dnsfailover-notify/0.1"


def env_value(value: object, limit: int = ENV_VALUE_MAX) -> str:
    """`value` as an environment value exec accepts: no NUL, valid UTF-8, at most `limit`."""
    text = "" if value is None else str(value)
    text = text.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    if len(text) > limit:
        note = f"… ({len(text)} characters, truncated)"
        text = text[: limit - len(note)] + note
    return text


def is_dry_run(event: Mapping[str, Any]) -> bool:
    return event.get("dry_run") is True


def hook_env(
    event: Mapping[str, Any], passthrough: Iterable[str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The exec hook's whole environment: PATH, LANG, the listed names, the event."""
    env = {"PATH": environ.get("PATH", DEFAULT_PATH)}
    for name in ("LANG", *passthrough):
        if name in environ:
            env[name] = environ[name]
    for key in EVENT_KEYS:  # after the listed names: a hook's inputs cannot be overridden
        env[f"DNSFAILOVER_{key.upper()}"] = env_value(event.get(key))
    env["DNSFAILOVER_DRY_RUN"] = "1" if is_dry_run(event) else "0"
    return env


def payload(event: Mapping[str, Any]) -> bytes:
    """The event as JSON (ASCII: every non-ASCII or control character escaped)."""
    return json.dumps({**event, "dry_run": is_dry_run(event)}, default=str).encode()


class WebhookTimeout(OSError):
    """The whole request did not complete before its deadline."""


def post_json(url: str, body: bytes, timeout: float, context: ssl.SSLContext) -> int:
    """POST `body` to `url` and return the status, all of it within `timeout` seconds.

    http.client never follows a redirect: a 3xx is returned like any other status.
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    deadline = time.monotonic() + timeout
    sock = _connect(host, port, deadline)
    watchdog = _Watchdog(sock.fileno(), deadline - time.monotonic())
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, context=context)
        if https
        else http.client.HTTPConnection(host, port)
    )
    try:
        connection.sock = context.wrap_socket(sock, server_hostname=host) if https else sock
        connection.request("POST", target, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        if watchdog.finish():
            raise WebhookTimeout(f"no answer within {timeout:g}s") from None
        raise
    finally:
        watchdog.finish()  # before the close: the number may be reused at once
        connection.close()
        sock.close()
    if watchdog.finish():  # cut off in the headers: http.client takes that end as their end
        raise WebhookTimeout(f"no answer within {timeout:g}s")
    return status


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection to any address of `host`, every attempt inside the deadline."""
    error: OSError = WebhookTimeout("no connection before the deadline")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(remaining)  # one more bound per operation; the watchdog bounds the rest
        try:
            sock.connect(address)
            return sock
        except OSError as e:
            error = e
            sock.close()
    raise error


class _Watchdog:
    """Shuts one socket down at a deadline, unless the request finished first: a read blocked
    on it returns at once."""

    def __init__(self, fd: int, delay: float) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._done = False
        self.expired = False
        self._timer = threading.Timer(max(0.0, delay), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            with contextlib.suppress(OSError):
                sock = socket.socket(fileno=self._fd)  # the TLS wrapper owns the object now
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.detach()

    def finish(self) -> bool:
        """Stop watching; whether the deadline had passed (the socket was shut down)."""
        with self._lock:
            self._done = True
        self._timer.cancel()
        return self.expired


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying context: the given bundle (file or directory), else the system's."""
    if ca_bundle is None:
        return ssl.create_default_context()
    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)


class Notifications:
    def __init__(
        self,
        settings: NotifySettings | None,
        on_failure: Callable[[str], None] = lambda kind: None,
        sleep: Callable[[float], None] = time.sleep,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.settings = settings
        self._on_failure = on_failure
        self._sleep = sleep  # between webhook retries; a test passes a no-op
        self._environ = environ
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        if settings is not None and (settings.exec is not None or settings.webhook is not None):
            self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
            self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue `event`; never blocks."""
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.error("notification_dropped event=%r reason=queue full", _short(event))
            self._failed("dropped")

    def close(self, wait: float = 5.0) -> None:
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=wait)
            except queue.Full:
                return
            self._thread.join(wait)
            self._thread = None

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            settings = self.settings
            if settings is not None and settings.exec is not None:
                self._guarded("exec", functools.partial(self._run_exec, settings.exec), event)
            if settings is not None and settings.webhook is not None:
                self._guarded("webhook", functools.partial(self._post, settings.webhook), event)

    def _guarded(
        self, kind: str, deliver: Callable[[dict[str, Any]], None], event: dict[str, Any]
    ) -> None:
        """One delivery; whatever it raises is logged and counted, never the thread's end."""
        try:
            deliver(event)
        except Exception as e:
            log.error(
                "hook_failed kind=%s event=%r error=%s", kind, _short(event), type(e).__name__
            )
            self._failed(kind)

    def _failed(self, kind: str) -> None:
        try:
            self._on_failure(kind)
        except Exception:
            log.exception("hook_failure_not_counted kind=%s", kind)

    def _run_exec(self, hook: ExecHook, event: dict[str, Any]) -> None:
        argv0 = hook.argv[0]
        # stderr to a file, not a pipe: a hook that writes without end costs disk for `timeout`
        # at most, not memory; and a grandchild holding a pipe open cannot keep us waiting.
        with tempfile.TemporaryFile() as stderr:
            try:
                done = subprocess.run(
                    list(hook.argv),
                    input=payload(event),
                    env=hook_env(event, hook.env, self._environ),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    timeout=hook.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                log.error("hook_timeout kind=exec argv0=%s timeout=%s", argv0, hook.timeout)
                self._failed("exec")
                return
            except OSError as e:
                log.error("hook_failed kind=exec argv0=%s error=%s", argv0, e.strerror)
                self._failed("exec")
                return
            if done.returncode != 0:
                stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - STDERR_TAIL))
                tail = stderr.read().decode("utf-8", "replace").strip()
                log.error(
                    "hook_failed kind=exec argv0=%s exit=%d stderr=%r", argv0, done.returncode, tail
                )
                self._failed("exec")

    def _post(self, hook: WebhookHook, event: dict[str, Any]) -> None:
        body = payload(event)
        delay = 0.5
        why = ""
        for attempt in range(1, hook.retries + 2):
            try:
                context = tls_context(None if hook.ca_bundle is None else str(hook.ca_bundle))
                status = post_json(hook.url, body, hook.timeout, context)
                if status < 300:
                    return
                why = f"HTTP {status}"
                if status in REDIRECTS:
                    why += " (redirects are not followed: give the final URL)"
                    break  # the same answer every time
            except (OSError, http.client.HTTPException, ValueError) as e:
                why = _why(e)
            log.warning("hook_retry kind=webhook attempt=%d error=%s", attempt, why)
            if attempt <= hook.retries:
                self._sleep(delay)
                delay *= 2
        log.error("hook_failed kind=webhook error=%s", why)
        self._failed("webhook")


def _why(error: BaseException) -> str:
    """The error's class and, for OS errors, its strerror: never a message that may quote the
    URL."""
    if isinstance(error, WebhookTimeout):
        return str(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS verification failed: {error.verify_message}"
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__


def _short(event: Mapping[str, Any]) -> str:
    return env_value(event.get("event"), 40)
