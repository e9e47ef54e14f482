"""Fault injection for the crash drills (tests/integration/test_drills.py).

`DNSFAILOVER_CRASHPOINT=NAME` makes the process SIGKILL itself when it reaches `crashpoint(NAME)`:
just before a DNS write, just after one is acknowledged, or in the middle of a state write.
Unset (always, outside the drills) it costs one dictionary lookup. Imports nothing.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "DNSFAILOVER_CRASHPOINT"


def crashpoint(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
