"""The operator's own commands of a practice run: `outcome_command` (a smoke test, e.g. an
issuance through the public name) and `blocking_command` (a check that must pass).

Each is run with a minimal environment (PATH, LANG, the DNSFAILOVER_* variables of the run and
the names the config lists — never the daemon's own environment, which may hold secrets),
killed at its timeout, and kept as its exit status and last lines of output (cleaned and
bounded: they are outside input). A command that
cannot start is a failed result, never an exception.
Imports config values, the run's values and the text cleaner only.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping

from dnsfailover.config.models import PracticeCommand
from dnsfailover.controller.practice import CommandResult
from dnsfailover.text import clean

LAST_LINES = 20
LINE_MAX = 400
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def run_command(
    name: str,
    command: PracticeCommand,
    when: str,
    variables: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
) -> CommandResult:
    env = {"PATH": environ.get("PATH", DEFAULT_PATH), "LANG": environ.get("LANG", "C.UTF-8")}
    env.update({k: environ[k] for k in command.env if k in environ})
    env.update({f"DNSFAILOVER_{k.upper()}": v for k, v in variables.items()})
    env["DNSFAILOVER_WHEN"] = when
    started = time.monotonic()
    try:
        done = subprocess.run(
            command.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=command.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        lines = (*_last(e.output), f"killed at its timeout ({command.timeout:g}s)")
        return CommandResult(name, when, False, None, lines[-LAST_LINES:], _since(started))
    except OSError as e:
        return CommandResult(name, when, False, None, (f"cannot run: {e}",), _since(started))
    lines = _last(done.stdout)
    return CommandResult(name, when, done.returncode == 0, done.returncode, lines, _since(started))


def _last(output: bytes | str | None) -> tuple[str, ...]:
    if output is None:
        return ()
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    # The command's output is outside input: cleaned and bounded before it is saved, logged
    # or passed to a hook (docs/security.md).
    lines = [clean(line, LINE_MAX) for line in text.splitlines() if line.strip()]
    return tuple(lines[-LAST_LINES:])


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
