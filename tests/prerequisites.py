"""A test's missing prerequisite (a binary, a Debian package): in CI (CI=true) the test fails,
never skips; on a laptop it skips and says what to install."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(what: str, fix: str) -> NoReturn:
    message = f"{what}: {fix}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def binary(name: str, package: str) -> str:
    """The binary's path, or the test fails (CI) / skips (laptop) naming its package."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is missing", f"apt-get install {package}")
    return found
