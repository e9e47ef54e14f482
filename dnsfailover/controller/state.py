"""The state directory: pins, drains, flip history and flips in progress (state.json), the
audit log (audit.jsonl), the last health (health.json, written by the daemon; its format lives
in `documents.py`), and the locks shared by the daemon and the CLI.

Writes are atomic (`atomicfile`). Every read-modify-write of state.json holds an exclusive
flock on `state.lock`, so a CLI `drain` and the daemon never lose each other's change; the
operator's verbs (operator.py) and the flip record each do lock → load → change → save in one
place. A flip is recorded as an intent before its DNS write and
completed after it, so a crash in between cannot leave hold-down unaware of a flip that landed
(`Pipeline.recover` settles a leftover intent against the live record). The daemon holds
`daemon.lock` for its whole life: `status` can tell whether one runs. A state file that does
not parse is a StateError and nothing acts on it. Imports errors and the atomic writer only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dnsfailover.atomicfile import atomic_write
from dnsfailover.errors import StateError

VERSION = 1
FLIP_HISTORY = 86400.0  # seconds of flips kept: enough for the flips-per-hour limit and status
# A practice run's two moves (controller/practice.py) are kept in the history, for status, but
# count neither toward hold-down nor toward the flips-per-hour limit.
UNCOUNTED_RULES = frozenset({"practice", "practice_return"})
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_LOCK = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # files made 0600, never through a symlink


@dataclass(frozen=True)
class Pin:
    instance: str
    reason: str
    at: float


@dataclass(frozen=True)
class Drain:
    reason: str
    at: float


@dataclass(frozen=True)
class Flip:
    at: float
    source: str | None
    target: str
    rule: str


@dataclass(frozen=True)
class SavedState:
    pins: dict[str, Pin] = field(default_factory=dict)  # service → pin
    drains: dict[str, Drain] = field(default_factory=dict)  # instance name → drain
    flips: dict[str, tuple[Flip, ...]] = field(default_factory=dict)  # service → recent flips
    intents: dict[str, Flip] = field(default_factory=dict)  # service → flip being written

    def with_flip(self, service: str, flip: Flip) -> SavedState:
        kept = tuple(f for f in self.flips.get(service, ()) if flip.at - f.at < FLIP_HISTORY)
        intents = {s: i for s, i in self.intents.items() if s != service}
        return replace(self, flips={**self.flips, service: (*kept, flip)}, intents=intents)

    def with_intent(self, service: str, flip: Flip | None) -> SavedState:
        intents = {s: i for s, i in self.intents.items() if s != service}
        return replace(self, intents=intents if flip is None else {**intents, service: flip})

    def flip_times(self, service: str) -> tuple[float, ...]:
        """When the flips that count (hold-down, flip rate) happened: not a practice run's."""
        return tuple(f.at for f in self.flips.get(service, ()) if f.rule not in UNCOUNTED_RULES)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "pins": {s: vars(p) for s, p in self.pins.items()},
            "drains": {i: vars(d) for i, d in self.drains.items()},
            "flips": {s: [vars(f) for f in fs] for s, fs in self.flips.items()},
            "intents": {s: vars(f) for s, f in self.intents.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> SavedState:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} state document")
        return cls(
            pins={s: Pin(**p) for s, p in data.get("pins", {}).items()},
            drains={i: Drain(**d) for i, d in data.get("drains", {}).items()},
            flips={s: tuple(Flip(**f) for f in fs) for s, fs in data.get("flips", {}).items()},
            intents={s: Flip(**f) for s, f in data.get("intents", {}).items()},
        )


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.state_path = self.directory / "state.json"
        self.health_path = self.directory / "health.json"
        self.audit_path = self.directory / "audit.jsonl"
        self._daemon_lock: int | None = None

    def _fail(self, action: str, error: OSError) -> StateError:
        return StateError(
            f"state directory {self.directory}: cannot {action}: {error.strerror or error}"
        )

    def ensure(self) -> None:
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as e:
            raise self._fail("create it", e) from None

    def check_ownership(self, euid: int | None = None) -> None:
        """At daemon start: refuse a directory anyone may write to, or one another non-root
        user owns. Whoever can write there can forge pins, drains, flip history and the audit
        log, or swap a file for a symlink (docs/security.md)."""
        self.ensure()
        euid = os.geteuid() if euid is None else euid
        try:
            info = os.stat(self.directory)
        except OSError as e:
            raise self._fail("inspect it", e) from None
        if info.st_mode & stat.S_IWOTH:
            raise StateError(
                f"state directory {self.directory} is world-writable "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): anyone could forge pins, drains "
                f"and the audit log; chmod o-w {self.directory} (0750 or 0700)"
            )
        if info.st_uid not in (euid, 0):
            raise StateError(
                f"state directory {self.directory} is owned by uid {info.st_uid}, not by this "
                f"process (uid {euid}) or root: chown it to the user dnsfailover runs as"
            )

    def clean_leftovers(self) -> list[str]:
        """Remove temporary files a crash left behind mid-write; return their names."""
        removed = []
        for leftover in self.directory.glob(".*.json.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed.append(leftover.name)
        return removed

    # ------------------------------------------------------------------ state.json

    def load(self) -> SavedState:
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SavedState()
        except OSError as e:
            raise self._fail(f"read {self.state_path.name}", e) from None
        try:
            return SavedState.from_json(json.loads(text))
        except (ValueError, TypeError, KeyError) as e:
            raise StateError(
                f"{self.state_path} is corrupt ({e}); no DNS change is made until it is fixed: "
                "restore it, or move it away to start with no pins, drains or flip history"
            ) from None

    def save(self, state: SavedState) -> None:
        self.ensure()
        try:
            document = json.dumps(state.to_json(), indent=2).encode()
            atomic_write(self.state_path, document, crash_name="state_write")
        except OSError as e:
            raise self._fail(f"write {self.state_path.name}", e) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock for a read-modify-write of state.json (daemon and CLI alike)."""
        self.ensure()
        try:
            fd = os.open(self.directory / "state.lock", _LOCK | os.O_RDWR, 0o600)
        except OSError as e:
            raise self._fail("open state.lock", e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[SavedState], SavedState]) -> SavedState:
        """One read-modify-write of state.json under the lock; returns the new state."""
        with self.locked():
            state = change(self.load())
            self.save(state)
        return state

    # ------------------------------------------------------------------ flips

    def begin_flip(self, service: str, flip: Flip) -> None:
        """Record the flip as intended, before the DNS write (this also proves state.json is
        writable: no change is made that could not be recorded)."""
        self.update(lambda s: s.with_intent(service, flip))

    def complete_flip(self, service: str, flip: Flip) -> None:
        """The write landed: the flip joins the history (hold-down, flip rate) and the intent
        is gone."""
        self.update(lambda s: s.with_flip(service, flip))

    def abandon_flip(self, service: str) -> None:
        """The write did not land: forget the intent."""
        self.update(lambda s: s.with_intent(service, None))

    # ------------------------------------------------------------------ daemon lock

    def claim_daemon(self) -> bool:
        """Hold daemon.lock for this process's life; False if another daemon holds it.

        The lock is held on a read-only descriptor, so the daemon keeps no file open for
        writing and the state directory can be remounted read-only under it (a drill).
        """
        self.ensure()
        try:
            fd = os.open(self.directory / "daemon.lock", _LOCK | os.O_RDONLY, 0o600)
        except OSError as e:
            raise self._fail("open daemon.lock", e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._daemon_lock = fd
        try:
            atomic_write(self.directory / "daemon.pid", f"{os.getpid()}\n".encode())
        except OSError as e:
            self.release_daemon()
            raise self._fail("write daemon.pid", e) from None
        return True

    def release_daemon(self) -> None:
        if self._daemon_lock is not None:
            os.close(self._daemon_lock)
            self._daemon_lock = None

    def daemon_pid(self) -> int | None:
        """The PID of the running daemon, or None when none holds the lock."""
        try:
            fd = os.open(self.directory / "daemon.lock", os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                text = (self.directory / "daemon.pid").read_text().strip()
            except OSError:
                return -1
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)
        return None

    # ------------------------------------------------------------------ health.json

    def save_health(self, document: dict[str, Any]) -> None:
        self.ensure()
        try:
            atomic_write(self.health_path, json.dumps(document, indent=2, default=str).encode())
        except OSError as e:
            raise self._fail(f"write {self.health_path.name}", e) from None

    def load_health(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.health_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ audit.jsonl

    def audit(self, entry: dict[str, Any]) -> None:
        """Append one JSON line and fsync it: the record of every decision."""
        self.ensure()
        line = json.dumps({"time": time.time(), **entry}, default=str, sort_keys=True) + "\n"
        try:
            # O_NOFOLLOW: a symlink planted in the directory is refused, never appended to.
            fd = os.open(self.audit_path, _APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()
                os.fsync(log.fileno())
        except OSError as e:
            raise self._fail(f"append to {self.audit_path.name}", e) from None

    def read_audit(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every entry, and a note for each line that does not parse (a torn last write)."""
        entries: list[dict[str, Any]] = []
        problems: list[str] = []
        try:
            lines = self.audit_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return entries, problems
        except OSError as e:
            raise self._fail(f"read {self.audit_path.name}", e) from None
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                entries.append(entry)
            except ValueError:
                problems.append(f"{self.audit_path}:{number}: unreadable entry skipped")
        return entries, problems
