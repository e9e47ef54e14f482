"""A server process of the lab: started with its log in a file, stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class LabError(RuntimeError):
    """A lab server did not start or did not answer."""


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.frozen = False  # stopped by freeze() (SIGSTOP), not yet resumed

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> None:
        environment = {**os.environ, **(self.env or {})}
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=self.cwd,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        """Poll `ready` until it returns True; fail with the log if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise LabError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise LabError(f"{self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def reload(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def thaw(self) -> None:
        """Resume it if it is frozen (for a drill's restore step, which may run any time)."""
        if self.frozen:
            self.resume()

    def kill(self) -> None:
        """Stop it hard, as a crash would."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait()

    def stop(self) -> None:
        """Stop it by its PID: SIGTERM (and SIGCONT, in case it is frozen), then SIGKILL."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.terminate()
        os.kill(self.pid, signal.SIGCONT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_since_start(self) -> str:
        """What the process wrote since its latest start (the log file is appended to)."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
