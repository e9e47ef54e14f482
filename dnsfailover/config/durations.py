"""Durations in the config: strings such as `500ms`, `10s`, `5m`, `2h`, `1d`, held as seconds.

Owns only parsing; imports nothing from the rest of the package.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: Any) -> float:
    """Return the duration in seconds; a bare number is refused because its unit is ambiguous."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is a string with a unit, e.g. '10s' or '5m' (got {value!r})")
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration: use a number and one of ms, s, m, h, d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` in the config's own syntax."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[float, BeforeValidator(parse_duration)]


def human(seconds: float) -> str:
    """A rounded duration for messages: `45s`, `4m30s`, `2h5m`, `3d4h`."""
    seconds = max(0, round(seconds))
    for big, big_unit, small, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if seconds >= big:
            rest = (seconds % big) // small
            return f"{seconds // big}{big_unit}" + (f"{rest}{small_unit}" if rest else "")
    return f"{seconds}s"
