"""Fault injection for the crash drills (tests/integration/test_drills.py).

`DNSFAILOVER_CRASHPOINT=NAME` makes the process SIGKILL itself when it reaches `crashpoint(NAME)`:
just before a DNS write, just after one is acknowledged, or in the middle of a state write;
`NAME:stop` makes it SIGSTOP itself there instead (a leader frozen with a write in flight, for
the fencing drill in tests/integration/test_coordination.py); `NAME:hang` blocks the thread that
reaches it for good (a stuck probe scheduler while the rest of the process goes on). With
`DNSFAILOVER_CRASHPOINT_IF=PATH` as well, only while PATH exists (a benchmark arms one process
of several, run after run).
Unset (always, outside the drills) it costs one dictionary lookup. Imports nothing.
"""

from __future__ import annotations

import os
import signal
import threading

VARIABLE = "DNSFAILOVER_CRASHPOINT"
ONLY_IF = "DNSFAILOVER_CRASHPOINT_IF"


def crashpoint(name: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if wanted is None:
        return
    armed = os.environ.get(ONLY_IF)
    if armed is not None and not os.path.exists(armed):
        return
    if wanted == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif wanted == f"{name}:hang":
        threading.Event().wait()
    elif wanted == f"{name}:stop":
        # To this thread: it takes the stop itself before it returns. Sent to the process,
        # another thread may take it, and this one ran on into the write for a moment.
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
