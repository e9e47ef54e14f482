"""Parallel runs (`pytest -n N`, pytest-xdist): every worker in a network namespace of its own;
and property tests derandomized in CI.

The lab's servers cannot be shared between two tests running at once: unbound listens on port
53, the sites' bridge has a fixed name and subnet (lab/sites.py). So each worker Python starts
through `scripts/isolated` (`unshare -n`, loopback up): its tests see only their own servers,
as a test does when the suite runs alone. A worker spec other than plain `popen` is left as
given.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests search randomly on a laptop (new examples each run find new bugs); in CI the
# search is derandomized, so that a submission is judged by the same examples every time and
# a bug found once is found again (a flaky test is a defect).
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

ISOLATED = Path(__file__).resolve().parents[1] / "scripts" / "isolated"


def _isolated(spec: str) -> str:
    count, star, rest = spec.rpartition("*")
    if rest != "popen":
        return spec
    python = f"{shlex.quote(str(ISOLATED))} {shlex.quote(sys.executable)}"
    return f"{count}{star}popen//python={python}"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    tx = getattr(config.option, "tx", None)
    if tx and config.getoption("dist", "no") != "no":
        config.option.tx = [_isolated(spec) for spec in tx]
