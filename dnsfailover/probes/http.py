"""HTTP for probes: a hard deadline over connect, TLS, headers and body together.

requests/urllib3 timeouts bound each socket operation, not the exchange: a server that
trickles one byte a second never trips them. Here every socket a probe opens is registered
with its deadline, and one watchdog thread shuts the socket down when the deadline passes, so
the blocked read returns at once. Bodies are read up to a cap. Redirects are followed only on
the same host.

A probe runs its requests inside `HttpClient.scope(deadline)`: one budget, one fresh
connection pool, closed when the probe ends. The requests of one probe (directory, then
newNonce) share a keep-alive connection, every socket of the scope is registered, and no
connection outlives the probe. A request made outside a scope runs in a scope of its own.

Transport trouble (a timeout, a refused connection, a certificate that does not verify, a body
over its cap) is translated once, in `HttpClient.fetch`, into `ProbeFailed`: the one early exit
every probe uses, carrying the outcome and a reason an operator reads. A probe catches it and
returns it as its result; it never leaves the probe.

The deadline machinery and TLS contexts are transport.py's. TLS is always verified. The
SSLContext (trust anchors loaded once) is shared by every client with the same CA bundle file
and the same hostname mode, and rebuilt when the file changes; urllib3 would otherwise build a
context and parse the whole bundle for every connection. The environment is ignored
(REQUESTS_CA_BUNDLE would override a session's verify). Imports the transport and the result
values.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from cryptography import x509

from dnsfailover.probes.transport import (
    WATCHDOG,
    Adapter,
    BodyTooLarge,
    Budget,
    ProbeTimeout,
    RedirectRefused,
    Scope,
    current_budget,
    current_scope,
    ssl_context,
)
from dnsfailover.results import Outcome

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USER_AGENT = "dnsfailover-probe/0.1"


class ProbeFailed(Exception):
    """Ends a probe early with an outcome and a reason; the probe returns it as its result."""

    def __init__(self, outcome: Outcome, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.outcome, self.reason, self.details = outcome, reason, details


def fail(reason: str, **details: Any) -> NoReturn:
    """The target is unhealthy, for `reason`."""
    raise ProbeFailed(Outcome.UNHEALTHY, reason, **details)


@dataclass(frozen=True)
class Response:
    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes
    url: str
    peer_cert: x509.Certificate | None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class HttpClient:
    """One per probed instance: its trust anchors and optional pinned server name."""

    def __init__(
        self,
        ca_bundle: str | None = None,
        server_name: str | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.verify: str | bool = ca_bundle or (
            SYSTEM_BUNDLE if os.path.exists(SYSTEM_BUNDLE) else True
        )
        self.server_name = server_name
        # TCP connect and TLS handshake (urllib3 keeps the connect timeout on the socket until
        # the handshake is done): a frozen host completes TCP in its kernel, then hangs in TLS.
        self.connect_timeout = connect_timeout
        self._context = (
            ssl_context(self.verify, server_name is not None)
            if isinstance(self.verify, str)
            else None
        )

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        adapter = Adapter(self.server_name, self._context)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @contextlib.contextmanager
    def scope(self, deadline: float) -> Iterator[None]:
        """The requests of one probe: one deadline over all of them, one connection pool that
        keeps a connection alive between them and is closed at the end."""
        budget = Budget(deadline)
        session = self._new_session()
        token, budget_token = current_scope.set(Scope(budget, session)), current_budget.set(budget)
        WATCHDOG.watch(budget)
        try:
            yield
        finally:
            budget.finish()
            current_budget.reset(budget_token)
            current_scope.reset(token)
            session.close()

    def fetch(
        self,
        method: str,
        url: str,
        deadline: float,
        max_bytes: int,
        what: str = "",
        **kwargs: Any,
    ) -> Response:
        """`request`, with every transport failure turned into ProbeFailed (UNHEALTHY), its
        reason prefixed with `what` ("directory: cannot connect: Connection refused")."""
        prefix = f"{what}: " if what else ""
        try:
            return self.request(method, url, deadline, max_bytes, **kwargs)
        except ProbeTimeout:
            fail(f"{prefix}no complete answer before the deadline")
        except (BodyTooLarge, RedirectRefused) as e:
            fail(f"{prefix}{e}")
        except requests.exceptions.SSLError as e:
            fail(f"{prefix}TLS verification failed: {describe(e)}")
        except requests.exceptions.ConnectionError as e:
            fail(f"{prefix}cannot connect: {describe(e)}")
        except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as e:
            fail(f"{prefix}{type(e).__name__}: {describe(e)}")

    def request(
        self,
        method: str,
        url: str,
        deadline: float,
        max_bytes: int,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        max_redirects: int = 2,
    ) -> Response:
        """One exchange (following same-host redirects), all of it before `deadline`."""
        scope = current_scope.get()
        if scope is None:  # not inside a probe's scope: a scope of its own
            with self.scope(deadline):
                return self.request(method, url, deadline, max_bytes, headers, data, max_redirects)
        for _ in range(max_redirects + 1):
            response = self._once(scope, method, url, deadline, max_bytes, headers, data)
            location = response.header("Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            target = urljoin(url, location)
            if (urlsplit(target).scheme, urlsplit(target).netloc) != (
                urlsplit(url).scheme,
                urlsplit(url).netloc,
            ):
                raise RedirectRefused(f"redirect to another host refused: {target}")
            url = target
        raise RedirectRefused(f"more than {max_redirects} redirects")

    def _once(
        self,
        scope: Scope,
        method: str,
        url: str,
        deadline: float,
        max_bytes: int,
        headers: dict[str, str] | None,
        data: bytes | None,
    ) -> Response:
        budget = scope.budget
        remaining = min(budget.remaining(), deadline - time.monotonic())
        if remaining <= 0:
            raise ProbeTimeout
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.server_name:
            port = urlsplit(url).port
            default = 443 if url.startswith("https:") else 80
            all_headers["Host"] = self.server_name + (
                f":{port}" if port not in (None, default) else ""
            )
        try:
            with scope.session.request(
                method,
                url,
                headers=all_headers,
                data=data,
                timeout=(min(remaining, self.connect_timeout or remaining), remaining),
                verify=self.verify,
                allow_redirects=False,
                stream=True,
            ) as raw:
                body = self._read(raw, budget, max_bytes)
                peer = budget.peer_cert
                status, response_headers = raw.status_code, raw.headers
        except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as e:
            if budget.expired or budget.remaining() <= 0:
                raise ProbeTimeout from None
            raise e
        cert = x509.load_der_x509_certificate(peer) if peer else None
        return Response(status, response_headers, body, url, cert)

    @staticmethod
    def _read(raw: requests.Response, budget: Budget, max_bytes: int) -> bytes:
        declared = raw.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise BodyTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        for chunk in raw.iter_content(chunk_size=16384):
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"body is over the {max_bytes}-byte cap")
            chunks.append(chunk)
            if budget.remaining() <= 0:
                raise ProbeTimeout
        return b"".join(chunks)


def describe(error: BaseException) -> str:
    """The innermost useful words of a requests/urllib3 error chain, on one short line.

    "certificate has expired", "Connection refused" rather than a 300-character repr of the
    pool that raised it.
    """
    seen: set[int] = set()
    queue: list[BaseException] = [error]
    deepest_os: OSError | None = None
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or "certificate verify failed")
        if type(current).__name__ == "CertificateError":  # urllib3's name check (a ValueError)
            return str(current)
        if isinstance(current, OSError) and current.strerror:
            deepest_os = current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += [arg for arg in current.args if isinstance(arg, BaseException)]
        queue += [n for n in nested if isinstance(n, BaseException)]
    if deepest_os is not None:
        return str(deepest_os.strerror)
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."
