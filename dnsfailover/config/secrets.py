"""Secrets: read by reference (a file or an environment variable), never held in plain sight.

A `Secret` hides its value from `repr`, `str` and formatting, so it cannot leak into logs,
`status` output or error messages by accident. Only `reveal()` gives the value, and only the
code that signs a request should call it. A systemd `LoadCredential=` file is read by its
fixed path (`/run/credentials/dnsfailover.service/NAME`). Imports only `dnsfailover.errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dnsfailover.errors import ConfigError


class Secret:
    """A secret value that will not print itself."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source}, ***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret_file(path: Path, what: str) -> Secret:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read secret file {path}: {e.strerror}") from None
    if not value:
        raise ConfigError(f"{what}: secret file {path} is empty")
    return Secret(value, f"file {path}")


def read_secret_env(name: str, what: str) -> Secret:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{what}: environment variable {name} is not set or empty")
    return Secret(value, f"${name}")
