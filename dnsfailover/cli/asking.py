"""The CLI's side of the control socket: ask the running daemon, print its answer.

`ask_daemon` returns the daemon's answer, or None when no daemon runs on this host (the
command may then act alone, operate.py); a daemon that runs but does not answer, or a socket
this user may not use, is an error that says so. The protocol is control.py's.
Imports the config loader, the exit codes, the state store (is a daemon running?) and the
control socket's client.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dnsfailover.cli import exitcodes
from dnsfailover.config import load_config
from dnsfailover.config.models import Config
from dnsfailover.controller import control
from dnsfailover.controller.state import StateStore
from dnsfailover.errors import ConfigError, DnsFailoverError

ANSWER_TIMEOUT = 600.0  # the daemon bounds each change itself; this only guards a hung one
PREFIX = {exitcodes.CONFLICT: "conflict", exitcodes.REFUSED: "refused"}


def ask_daemon(config: Config, request: dict[str, Any]) -> control.Answer | None:
    """The running daemon's answer, or None when no daemon runs here."""
    path = config.control_socket
    try:
        return control.ask(path, request, ANSWER_TIMEOUT)
    except control.Unreachable:
        pid = StateStore(config.state_dir).daemon_pid()
        if pid is not None:
            raise DnsFailoverError(
                f"the daemon (pid {pid}) runs but does not answer on its control socket {path} "
                "(control_socket in the config it runs with?): nothing done"
            ) from None
        return None
    except PermissionError:
        raise ConfigError(
            f"control socket {path}: permission denied: run as root, as the daemon's user, or "
            f"as a member of group {control.GROUP}"
        ) from None
    except (OSError, ValueError) as e:
        raise DnsFailoverError(f"control socket {path}: no answer from the daemon: {e}") from None


def finish(answer: control.Answer) -> int:
    """Print the daemon's answer as it is; its exit code is ours."""
    for line in answer.lines:
        print(line)
    if answer.error is not None:
        print(f"{PREFIX.get(answer.exit, 'error')}: {answer.error}", file=sys.stderr)
    return answer.exit


def config_for_door(args: argparse.Namespace) -> Config:
    """The config as far as finding the daemon needs it: no file it names is opened."""
    return load_config(args.config, files=False).config
