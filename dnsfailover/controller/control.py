"""The control socket: the operator's door into a running daemon (as chronyc, birdc, HAProxy).

A Unix stream socket (`control_socket`, default `/run/dnsfailover/control`, under the unit's
`RuntimeDirectory=`), mode 0660, group `dnsfailover` when that group exists and the daemon may
give the socket to it. The kernel lets in only who may write the socket file; the daemon
checks each peer again with SO_PEERCRED: root, the daemon's own user, or a member of the group
(primary or supplementary), else the peer is refused.

The protocol is line-delimited JSON, one request and one answer a line, on a thread of its
own with a thread per connection (at most `MAX_CONNECTIONS` at once; one more is told "busy"):

    → {"verb": "drain", "instance": "ca-a", "reason": "kernel update"}
    ← {"ok": true, "exit": 0, "lines": ["ca-a drained ...", "acme: CNAME ... "], "result": {...}}

A request is at most `MAX_REQUEST` bytes; a connection that sends nothing for `IDLE_TIMEOUT`
is closed. `exit` is the CLI's exit code (0 ok, 1 operational, 2 usage or config, 3 refused by
a safety rule, 4 conflict); `lines` are printed as they are, `error` on stderr. Whatever a
peer sends is answered (bad JSON, an unknown verb, a missing field, a bug in a handler) and
never raises into the daemon. What each verb does is the door's business (door.py).
Imports nothing from the package: the client side is used by the CLI too.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GROUP = "dnsfailover"  # members may use the socket (documented; the socket's group)
MAX_REQUEST = 16 * 1024  # bytes in one request line
MAX_ANSWER = 4 * 1024 * 1024  # bytes the client reads in one answer
MAX_CONNECTIONS = 8
IDLE_TIMEOUT = 10.0  # seconds a connection may stay silent before its request is in

OK, FAILURE, USAGE, REFUSED, CONFLICT = 0, 1, 2, 3, 4  # cli/exitcodes.py, the same numbers

# verb → its fields: name → (type, required)
VERBS: dict[str, dict[str, tuple[type, bool]]] = {
    "status": {},
    "failover": {
        "service": (str, True),
        "to": (str, True),
        "reason": (str, False),
        "force": (bool, False),
    },
    "release": {"service": (str, True)},
    "drain": {"instance": (str, True), "reason": (str, True)},
    "undrain": {"instance": (str, True)},
    "drill": {
        "id": (str, True),
        "service": (str, True),
        "to": (str, False),
        "duration": (float, False),
        "reason": (str, True),
        "ignore_window": (bool, False),
        "cancel": (bool, False),
    },
}


@dataclass
class Answer:
    ok: bool = True
    exit: int = OK
    lines: list[str] = field(default_factory=list)
    error: str | None = None
    result: Any = None

    @classmethod
    def failed(cls, exit: int, error: str, lines: list[str] | None = None) -> Answer:
        return cls(False, exit, lines or [], error)

    def to_line(self) -> bytes:
        document = {"ok": self.ok, "exit": self.exit, "lines": self.lines, "error": self.error,
                    "result": self.result}  # fmt: skip
        return json.dumps(document, default=str).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Answer:
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("exit"), int):
            raise ValueError("not an answer")
        lines = [str(x) for x in data.get("lines") or []]
        error = data.get("error")
        return cls(bool(data.get("ok")), data["exit"], lines,
                   None if error is None else str(error), data.get("result"))  # fmt: skip


@dataclass(frozen=True)
class Request:
    verb: str
    fields: Mapping[str, Any]


def parse_request(line: bytes) -> Request | Answer:
    """A request line → the request, or the error answer that says what is wrong with it."""
    try:
        data = json.loads(line)
    except ValueError:
        return Answer.failed(USAGE, "the request is not JSON (one object a line)")
    if not isinstance(data, dict) or not isinstance(data.get("verb"), str):
        return Answer.failed(USAGE, 'the request is not an object with a "verb"')
    verb = data["verb"]
    shape = VERBS.get(verb)
    if shape is None:
        return Answer.failed(USAGE, f"unknown verb (known: {', '.join(sorted(VERBS))})")
    fields: dict[str, Any] = {}
    for name, (kind, required) in shape.items():
        value = data.get(name)
        if value is None:
            if required:
                return Answer.failed(USAGE, f"{verb}: {name!r} is required")
            continue
        if not isinstance(value, kind):
            return Answer.failed(USAGE, f"{verb}: {name!r} must be a {kind.__name__}")
        fields[name] = value
    unknown = sorted(set(data) - set(shape) - {"verb"})
    if unknown:
        return Answer.failed(USAGE, f"{verb}: unknown fields {unknown}")
    return Request(verb, fields)


# ----------------------------------------------------------------------------- peers


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(connection: socket.socket) -> Peer:
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", raw))


def group_id(name: str = GROUP) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _groups_of(peer: Peer) -> set[int]:
    """The peer's groups: its process's (/proc), else its user's in the user database."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{peer.pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    with contextlib.suppress(KeyError, OSError):
        return set(os.getgrouplist(pwd.getpwuid(peer.uid).pw_name, peer.gid))
    return set()


@dataclass(frozen=True)
class PeerPolicy:
    """Who may use the socket: root, the daemon's own user, a member of `group`."""

    own_uid: int
    group: int | None

    def refusal(self, peer: Peer) -> str | None:
        if peer.uid in (0, self.own_uid):
            return None
        if self.group is not None and (peer.gid == self.group or self.group in _groups_of(peer)):
            return None
        return (f"uid {peer.uid} may not use the control socket: run as root, as the daemon's "
                f"user, or as a member of group {GROUP}")  # fmt: skip


# ----------------------------------------------------------------------------- the server

Handler = Callable[[Request, Peer], Answer]


class ControlServer:
    def __init__(
        self,
        path: Path,
        handle: Handler,
        policy: PeerPolicy | None = None,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        max_request: int = MAX_REQUEST,
    ) -> None:
        self.path = Path(path)
        self.handle = handle
        self.policy = policy or PeerPolicy(os.geteuid(), group_id())
        self.max_request = max_request
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Listen (OSError when it cannot: the caller says where and why)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o117)  # created 0660 at once: never a moment wider
            try:
                listener.bind(str(self.path))
            finally:
                os.umask(old)
            self._give_to_group()
            listener.listen(MAX_CONNECTIONS * 2)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control_socket_listening path=%s", self.path)

    def _remove_stale(self) -> None:
        """A socket left by a daemon that died; one that answers belongs to a live daemon."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise FileExistsError(f"another daemon listens on {self.path}")

    def _give_to_group(self) -> None:
        group = self.policy.group
        os.chmod(self.path, 0o660)
        if group is None:
            return
        if os.stat(self.path).st_gid == group:
            return  # already its group (the daemon runs with it): no chown, which the unit's
            # system-call filter forbids (~@privileged includes @chown)
        try:
            os.chown(self.path, -1, group)
        except OSError as e:  # not a member of it (and not root): the owner's group stays
            log.warning("control_socket_group group=%s error=%s: members cannot connect",
                        GROUP, e.strerror)  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                connection, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                busy = Answer.failed(FAILURE, "busy: too many requests at once; try again")
                self._answer_and_close(connection, busy)
                continue
            thread = threading.Thread(target=self._connection, args=(connection,), daemon=True)
            thread.start()

    def _answer_and_close(self, connection: socket.socket, answer: Answer) -> None:
        with contextlib.suppress(OSError):
            connection.settimeout(self.idle_timeout)
            connection.sendall(answer.to_line())
        connection.close()

    def _connection(self, connection: socket.socket) -> None:
        try:
            with connection:
                self._converse(connection)
        except Exception:  # never into the daemon: a bug here ends one connection
            log.exception("control_connection_failed")
        finally:
            self._slots.release()

    def _converse(self, connection: socket.socket) -> None:
        peer = peer_of(connection)
        refusal = self.policy.refusal(peer)
        if refusal is not None:
            log.warning("control_refused pid=%d uid=%d gid=%d", peer.pid, peer.uid, peer.gid)
            connection.sendall(Answer.failed(USAGE, refusal).to_line())
            return
        connection.settimeout(self.idle_timeout)
        pending = b""
        while not self._stopping.is_set():
            line, pending, problem = self._read_line(connection, pending)
            if problem is not None:
                connection.sendall(problem.to_line())
                return
            if line is None:
                return  # the peer closed
            connection.sendall(self._answer(line, peer).to_line())

    def _read_line(
        self, connection: socket.socket, pending: bytes
    ) -> tuple[bytes | None, bytes, Answer | None]:
        while b"\n" not in pending:
            if len(pending) > self.max_request:
                break
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                return None, b"", Answer.failed(USAGE, f"no request within {self.idle_timeout:g}s")
            if not chunk:
                return None, b"", None
            pending += chunk
        line, _, rest = pending.partition(b"\n")
        if len(line) > self.max_request:
            return None, b"", Answer.failed(USAGE, f"request over {self.max_request} bytes")
        return line, rest, None

    def _answer(self, line: bytes, peer: Peer) -> Answer:
        request = parse_request(line)
        if isinstance(request, Answer):
            return request
        log.info("control_request verb=%s uid=%d pid=%d", request.verb, peer.uid, peer.pid)
        try:
            return self.handle(request, peer)
        except Exception as e:  # a handler's bug is an answer, never the daemon's end
            log.exception("control_request_failed verb=%s", request.verb)
            return Answer.failed(FAILURE, f"the daemon failed the request: {type(e).__name__}")


# ----------------------------------------------------------------------------- the client


class Unreachable(Exception):
    """No daemon answers on the socket (absent, or nobody listening)."""


def ask(path: Path, request: Mapping[str, Any], timeout: float) -> Answer:
    """Send one request and read its answer. `Unreachable` when no daemon listens there;
    PermissionError when this user may not connect; OSError or ValueError for the rest."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(5.0)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise Unreachable(str(e)) from None
        client.settimeout(timeout)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # A peer the daemon refuses is answered and closed at once, maybe before this.
            client.sendall(json.dumps(dict(request)).encode() + b"\n")
        received = b""
        while b"\n" not in received and len(received) <= MAX_ANSWER:
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
    finally:
        client.close()
    line = received.partition(b"\n")[0]
    if not line:
        raise ValueError("the daemon closed the connection without an answer")
    return Answer.parse(line)
