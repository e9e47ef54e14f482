"""The state directory at daemon start, and its files (controller/state.py, atomicfile.py).

Whoever can write to the state directory forges pins, drains, flip history and the audit
log: a world-writable one, or one another non-root user owns, is refused; files are made
0600 whatever the umask, and a symlink planted in place of one is never followed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsfailover.controller.state import SavedState, StateStore
from dnsfailover.errors import StateError
from tests.offline_config import offline_config


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o750)
    return StateStore(directory)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_private_directory_is_accepted(store: StateStore) -> None:
    store.check_ownership()


def test_a_world_writable_directory_is_refused(store: StateStore) -> None:
    os.chmod(store.directory, 0o777)
    with pytest.raises(StateError, match=r"world-writable \(mode 0777\).*chmod o-w"):
        store.check_ownership()


def test_a_directory_another_user_owns_is_refused(store: StateStore) -> None:
    if os.geteuid() == 0:
        os.chown(store.directory, 4242, -1)
        euid = None
    else:
        euid = os.geteuid() + 1  # as if another non-root user ran the daemon
    with pytest.raises(StateError, match="owned by uid .* not by this process"):
        store.check_ownership(euid)


def test_files_are_created_0600_whatever_the_umask(store: StateStore, umask_022: None) -> None:
    store.save(SavedState())
    store.audit({"event": "test"})
    store.save_health({"services": {}})
    with store.locked():
        pass
    assert store.claim_daemon()
    store.release_daemon()
    made = ["state.json", "audit.jsonl", "health.json", "state.lock", "daemon.lock"]
    assert {name: mode(store.directory / name) for name in made} == dict.fromkeys(made, 0o600)


def test_the_audit_log_never_follows_a_symlink(store: StateStore, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    (store.directory / "audit.jsonl").symlink_to(target)
    with pytest.raises(StateError, match="append to audit.jsonl"):
        store.audit({"event": "test"})
    assert target.read_text() == "untouched\n"


def test_a_lock_never_follows_a_symlink(store: StateStore, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (store.directory / "state.lock").symlink_to(target)
    with pytest.raises(StateError, match="open state.lock"):
        store.update(lambda state: state)
    assert not target.exists()


def test_an_atomic_write_replaces_a_symlink_instead_of_writing_through_it(
    store: StateStore, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    (store.directory / "state.json").symlink_to(target)
    store.save(SavedState())
    assert target.read_text() == "untouched\n"
    assert not (store.directory / "state.json").is_symlink()
    assert json.loads((store.directory / "state.json").read_text())["version"] == 1


def test_the_daemon_refuses_a_world_writable_state_directory(tmp_path: Path) -> None:
    """One clear line, an operational failure, and no DNS work started."""
    config = offline_config(tmp_path)
    (tmp_path / "state").mkdir()
    os.chmod(tmp_path / "state", 0o777)
    done = subprocess.run([sys.executable, "-m", "dnsfailover", "run", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "world-writable (mode 0777)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "audit.jsonl").exists()
