"""The operator's commands of a practice run (controller/commands.py), run for real: exit
status, last lines cleaned and bounded, killed at the timeout, a minimal environment."""

from __future__ import annotations

import sys

from dnsfailover.config.models import PracticeCommand
from dnsfailover.controller.commands import LAST_LINES, run_command


def command(code: str, **fields: object) -> PracticeCommand:
    return PracticeCommand.model_validate({"argv": [sys.executable, "-c", code], **fields})


def test_a_passing_command_keeps_its_last_lines_and_sees_only_its_variables() -> None:
    code = ("import os\nfor n in range(30): print('line', n)\n"
            "print(sorted(k for k in os.environ if k.startswith('DNSFAILOVER_') or k == 'SECRET'))")  # fmt: skip
    result = run_command("outcome_command", command(code), "after_move", {"run": "r1", "to": "b"},
                         environ={"PATH": "/usr/bin:/bin", "SECRET": "tsig"})  # fmt: skip
    assert result.passed and result.exit == 0 and len(result.lines) == LAST_LINES
    assert result.lines[-1] == "['DNSFAILOVER_RUN', 'DNSFAILOVER_TO', 'DNSFAILOVER_WHEN']"


def test_a_failing_command_is_a_result_with_its_output_cleaned() -> None:
    result = run_command("blocking_command",
                         command("print('freeze\\x1b[31m on'); raise SystemExit(3)"),
                         "before_start", {})  # fmt: skip
    assert not result.passed and result.exit == 3
    assert result.lines == ("freeze\\x1b[31m on",)
    assert result.summary() == "blocking_command failed (exit 3) before_start: freeze\\x1b[31m on"


def test_a_command_is_killed_at_its_timeout_and_one_that_cannot_start_fails() -> None:
    slow = run_command("outcome_command", command("import signal; print('go', flush=True); "
                       "signal.pause()", timeout="500ms"), "after_move", {})  # fmt: skip
    assert not slow.passed and slow.exit is None
    assert slow.lines[-1] == "killed at its timeout (0.5s)"
    missing = PracticeCommand.model_validate({"argv": ["/nonexistent/smoke"]})
    gone = run_command("outcome_command", missing, "after_move", {})
    assert not gone.passed and gone.lines[0].startswith("cannot run:")
