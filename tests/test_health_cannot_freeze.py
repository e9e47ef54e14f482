"""Health cannot freeze, from the target's answer to the verdict: the real ACME probe (over a
scripted HTTP client), the scheduler's run and the tracker, on a simulated clock.

Whatever an instance answers — passes, 429 for ever, 503 rateLimited with any Retry-After, 5xx,
an exception inside the probe, a probe that raises, silence — it is never HEALTHY at T unless
a probe passed within `fall` x interval + the bound before T; and a Retry-After never keeps the
probe quiet longer than `max_retry_after`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from dnsfailover.config import load_config
from dnsfailover.config.models import AcmeCheck, Checks
from dnsfailover.controller.runtime import ProbeJob, Runtime
from dnsfailover.controller.scheduler import ProbeScheduler
from dnsfailover.health import HealthTracker, State
from dnsfailover.probes.acme import AcmeProbe
from dnsfailover.probes.http import HttpClient, Response
from dnsfailover.results import Outcome, ProbeResult
from tests.offline_config import offline_config

BASE = "https://ca.example.test"
DIRECTORY = json.dumps(
    {"newNonce": f"{BASE}/nonce", "newAccount": f"{BASE}/acct", "newOrder": f"{BASE}/order"}
).encode()
CHECKS = Checks()  # 10s, 3s, rise 3, fall 2: bound 43s, Retry-After cap 20s
RETRY_AFTERS = ["0", "1", "30", "3600", "99999999999", "9" * 400, "²", "Wed, 21 Oct 2099 07:28:00 GMT", "soon"]  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class ScriptedHttp(HttpClient):
    """Answers as the current `mode` says; records when a request was sent."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock, self.mode, self.retry_after = clock, "ok", "30"
        self.sent: list[float] = []

    @contextlib.contextmanager
    def scope(self, deadline: float) -> Iterator[None]:
        yield

    def request(self, method: str, url: str, deadline: float, max_bytes: int, **_: Any) -> Response:
        self.sent.append(self.clock())
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        if self.mode == "raise":
            raise RuntimeError("a bug deep in the client")
        if self.mode == "ok":
            if url.endswith("/nonce"):
                headers.update({"Replay-Nonce": secrets.token_urlsafe(12), "Cache-Control": "no-store"})  # fmt: skip
                return Response(200, headers, b"", url, None)
            return Response(200, headers, DIRECTORY, url, None)
        status, kind = {"429": (429, "rateLimited"), "503": (503, "rateLimited"),
                        "500": (500, "serverInternal")}[self.mode]  # fmt: skip
        headers["Retry-After"] = self.retry_after
        body = json.dumps({"type": f"urn:ietf:params:acme:error:{kind}"}).encode()
        return Response(status, headers, body, url, None)


class RaisingProbe:
    """A probe with a bug: the scheduler must turn it into an ERROR result."""

    check, required = "acme", True

    def run(self, deadline: float) -> ProbeResult:
        raise ZeroDivisionError("division by zero")


def test_the_scheduler_hands_on_an_error_result_for_a_probe_that_raises() -> None:
    clock, got = Clock(), []
    job = ProbeJob("svc", "a", RaisingProbe(), 10.0, 3.0, 3, 2)
    ProbeScheduler([job], lambda j, r: got.append(r), clock).run(job)
    [result] = got
    assert result.outcome is Outcome.ERROR and result.observed_at == clock.now
    assert result.reason == "probe crashed: ZeroDivisionError: division by zero"


def test_an_exception_inside_the_probe_is_an_error_result() -> None:
    clock = Clock()
    http = ScriptedHttp(clock)
    http.mode = "raise"
    result = AcmeProbe(AcmeCheck(directory=f"{BASE}/dir"), clock, http).run(float("inf"))
    assert result.outcome is Outcome.ERROR
    assert result.reason == "probe crashed: RuntimeError: a bug deep in the client"


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    clock = Clock()
    http = ScriptedHttp(clock)
    http.mode, http.retry_after = "503", "99999999999"
    acme = AcmeProbe(AcmeCheck(directory=f"{BASE}/dir"), clock, http, max_retry_after=20.0)
    first = acme.run(float("inf"))
    assert first.outcome is Outcome.OVERLOADED and len(http.sent) == 1
    clock.now += 19.9
    quiet = acme.run(float("inf"))
    assert quiet.outcome is Outcome.OVERLOADED and len(http.sent) == 1  # honoured
    assert "waiting 0s more" in quiet.reason or "waiting 1s more" in quiet.reason
    http.mode = "ok"
    clock.now += 0.1
    assert acme.run(float("inf")).outcome is Outcome.HEALTHY  # probing again after the cap


def test_a_short_retry_after_is_honoured_as_asked() -> None:
    clock = Clock()
    http = ScriptedHttp(clock)
    http.mode, http.retry_after = "503", "5"
    acme = AcmeProbe(AcmeCheck(directory=f"{BASE}/dir"), clock, http, max_retry_after=20.0)
    acme.run(float("inf"))
    clock.now += 5.0
    acme.run(float("inf"))
    assert len(http.sent) == 2


MODES = st.sampled_from(["ok", "429", "503", "500", "raise", "probe raises", "silence"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(MODES, st.sampled_from(RETRY_AFTERS), st.floats(0.0, 3.0)),
        min_size=1,
        max_size=80,
    )
)
def test_never_healthy_without_a_pass_and_never_quiet_past_the_cap(
    ticks: list[tuple[str, str, float]],
) -> None:
    clock = Clock()
    http = ScriptedHttp(clock)
    acme = AcmeProbe(
        AcmeCheck(directory=f"{BASE}/dir"), clock, http, max_retry_after=CHECKS.retry_after_cap
    )
    bound, cap = CHECKS.inconclusive_bound, CHECKS.retry_after_cap
    tracker = HealthTracker()
    tracker.register("svc", "a", "acme", True, inconclusive_after=bound, now=clock.now)
    passes: list[float] = []

    def deliver(job: ProbeJob, result: ProbeResult) -> None:
        passes.extend([result.observed_at] if result.ok else [])
        tracker.observe("svc", "a", result, CHECKS.rise, CHECKS.fall, now=clock.now)

    good = ProbeJob("svc", "a", acme, CHECKS.interval, CHECKS.timeout, CHECKS.rise, CHECKS.fall)
    bad = ProbeJob("svc", "a", RaisingProbe(), CHECKS.interval, CHECKS.timeout, 3, 2)
    scheduler = ProbeScheduler([good], deliver, clock)
    detection = CHECKS.fall * CHECKS.interval + bound
    for mode, retry_after, jitter in ticks:
        clock.now += CHECKS.interval + jitter
        http.mode, http.retry_after = mode, retry_after
        sent = len(http.sent)
        if mode == "probe raises":
            scheduler.run(bad)
        elif mode != "silence":
            scheduler.run(good)
            if len(http.sent) == sent:  # quiet, as a Retry-After asked: never past the cap
                assert http.sent and clock.now < http.sent[-1] + cap
        now = clock.now
        health = tracker.instances("svc", now=now)["a"]
        if health.state is State.HEALTHY:
            assert any(p <= now and now - p < detection for p in passes), health.reason
            assert any(p <= now and now - p < bound for p in passes), health.reason


def test_the_runtime_carries_the_bound_and_the_cap_from_the_config(tmp_path: Path) -> None:
    config = load_config(offline_config(tmp_path)).config
    jobs = Runtime.build(config, providers_too=False).jobs
    assert [j.inconclusive_after for j in jobs] == [CHECKS.inconclusive_bound] * 2  # 43s
    assert all(isinstance(j.probe, AcmeProbe) and j.probe.max_retry_after == 20.0 for j in jobs)
