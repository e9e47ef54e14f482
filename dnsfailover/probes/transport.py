"""The probes' HTTP transport: every socket under one hard deadline, TLS verified once.

`Budget` is one probe's deadline and the sockets it opened; `WATCHDOG` (one thread) shuts a
budget's sockets down when its deadline passes, so a blocked read returns at once — requests
and urllib3 timeouts bound each socket operation, not the exchange. The connection classes
register each new socket with the budget of the scope it runs in (`current_budget`); `Adapter`
mounts them with a shared verifying `ssl_context` (one per CA bundle as it is on disk and
hostname mode) and an optional pinned server name. http.py builds the client on top of it.
Imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter


class ProbeTimeout(Exception):
    """The deadline passed."""


class BodyTooLarge(Exception):
    """The body is larger than the cap."""


class RedirectRefused(Exception):
    """A redirect to another host, or too many redirects."""


@dataclass
class Budget:
    deadline: float  # time.monotonic()
    # (fd, inode) of each socket: a socket closed during the probe frees its fd number for
    # any other socket of the process; the inode tells whether the fd is still ours.
    fds: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    expired: bool = False
    peer_cert: bytes | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def track(self, fd: int) -> None:
        with self.lock:
            if self.expired:
                raise ProbeTimeout
            self.fds.append((fd, os.fstat(fd).st_ino))

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            for fd, inode in self.fds:
                with contextlib.suppress(OSError):
                    if os.fstat(fd).st_ino != inode:
                        continue  # closed, and the number reused by a socket not ours
                    sock = socket.socket(fileno=fd)
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    finally:
                        sock.detach()  # the owner closes it

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self.fds.clear()


current_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "budget", default=None
)


@dataclass
class Scope:
    budget: Budget
    session: requests.Session


current_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("scope", default=None)

_contexts: dict[tuple[str, int, int, bool], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context(bundle: str, pinned_name: bool) -> ssl.SSLContext | None:
    """One verifying context per (CA bundle as it is on disk now, hostname mode).

    With a pinned server name urllib3 checks the name itself and turns the context's
    check_hostname off; such contexts are made with it off, so urllib3 never changes a context
    another client relies on. None when the bundle cannot be read or parsed now: the client
    then loads it for each connection, and each probe reports why it fails.
    """
    try:
        st = os.stat(bundle)
    except OSError:
        return None
    key = (bundle, st.st_mtime_ns, st.st_size, pinned_name)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            try:
                context = ssl.create_default_context(
                    cafile=None if os.path.isdir(bundle) else bundle,
                    capath=bundle if os.path.isdir(bundle) else None,
                )
            except (OSError, ssl.SSLError):
                return None
            if pinned_name:
                context.check_hostname = False
            for stale in [k for k in _contexts if k[0] == bundle and k[3] == pinned_name]:
                del _contexts[stale]
            _contexts[key] = context
        return context


class Watchdog:
    """One thread for every probe: expires budgets whose deadline passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Budget]] = []
        self._cv = threading.Condition()
        self._count = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def watch(self, budget: Budget) -> None:
        with self._cv:
            if self._thread is None or self._pid != os.getpid():
                self._heap, self._pid = [], os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="probe-watchdog", daemon=True
                )
                self._thread.start()
            self._count += 1
            heapq.heappush(self._heap, (budget.deadline, self._count, budget))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                deadline, _, budget = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
            budget.expire()


WATCHDOG = Watchdog()


def track_socket(sock: socket.socket) -> None:
    budget = current_budget.get()
    if budget is not None:
        budget.track(sock.fileno())


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        track_socket(sock)
        return sock


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        track_socket(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        budget = current_budget.get()
        if budget is not None and self.sock is not None:
            getpeercert = getattr(self.sock, "getpeercert", None)
            if getpeercert is not None:
                budget.peer_cert = getpeercert(binary_form=True)


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class Adapter(HTTPAdapter):
    """Deadline-aware pools on a shared verifying SSLContext; SNI and certificate name can be
    pinned to a public name."""

    def __init__(self, server_name: str | None, context: ssl.SSLContext | None) -> None:
        self._server_name = server_name
        self._context = context
        super().__init__(pool_connections=1, pool_maxsize=4, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._server_name:
            kwargs["server_hostname"] = self._server_name
            kwargs["assert_hostname"] = self._server_name
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        # The trust anchors are in the shared context: no per-pool bundle path to load again.
        shared = self._context is not None and verify is not False
        return super().build_connection_pool_key_attributes(
            request, True if shared else verify, cert
        )

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        if self._context is None or verify is False:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            return
        conn.cert_reqs = "CERT_REQUIRED"  # verified against the shared context's anchors
        conn.ca_certs = None
        conn.ca_cert_dir = None
