"""Notifications on decision events: an `exec` hook and a `webhook`, off the failover path.

Events go into a bounded queue served by one worker thread, so a slow or failing hook never
delays a failover: when the queue is full the event is dropped and counted. The exec hook gets
the event as DNSFAILOVER_* environment variables and as JSON on stdin, and is killed at its
timeout. The webhook is an HTTP POST of the JSON, retried a bounded number of times. Failures
are logged and counted. Imports config models only.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from dnsfailover.config.models import NotifySettings

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class Notifications:
    def __init__(
        self,
        settings: NotifySettings | None,
        on_failure: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.settings = settings
        self._on_failure = on_failure
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
            log.error("notification_dropped event=%s reason=queue full", event.get("event"))
            self._on_failure("dropped")

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
            if self.settings is None:
                continue
            if self.settings.exec is not None:
                self._run_exec(event)
            if self.settings.webhook is not None:
                self._post(event)

    def _run_exec(self, event: dict[str, Any]) -> None:
        assert self.settings is not None and self.settings.exec is not None
        hook = self.settings.exec
        env = {**os.environ}
        for key in ("event", "service", "from", "to", "rule", "reason", "instance"):
            value = event.get(key)
            env[f"DNSFAILOVER_{key.upper()}"] = "" if value is None else str(value)
        payload = json.dumps(event, default=str)
        try:
            done = subprocess.run(
                list(hook.argv),
                input=payload,
                text=True,
                env=env,
                capture_output=True,
                timeout=hook.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.error("hook_timeout kind=exec argv0=%s timeout=%s", hook.argv[0], hook.timeout)
            self._on_failure("exec")
            return
        except OSError as e:
            log.error("hook_failed kind=exec argv0=%s error=%s", hook.argv[0], e.strerror)
            self._on_failure("exec")
            return
        if done.returncode != 0:
            log.error(
                "hook_failed kind=exec argv0=%s exit=%d stderr=%s",
                hook.argv[0],
                done.returncode,
                done.stderr.strip()[-200:],
            )
            self._on_failure("exec")

    def _post(self, event: dict[str, Any]) -> None:
        assert self.settings is not None and self.settings.webhook is not None
        hook = self.settings.webhook
        delay = 0.5
        for attempt in range(1, hook.retries + 2):
            try:
                response = requests.post(
                    hook.url,
                    json=event,
                    timeout=hook.timeout,
                    verify=True if hook.ca_bundle is None else str(hook.ca_bundle),
                )
                if response.status_code < 300:
                    return
                why = f"HTTP {response.status_code}"
            except requests.RequestException as e:
                why = type(e).__name__
            log.warning("hook_retry kind=webhook attempt=%d error=%s", attempt, why)
            if attempt <= hook.retries:
                time.sleep(delay)
                delay *= 2
        log.error("hook_failed kind=webhook error=%s", why)
        self._on_failure("webhook")
