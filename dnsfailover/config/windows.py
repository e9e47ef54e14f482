"""Practice-run windows and blocked dates, in UTC, in Route 53 ARC's format.

A window is `Mon:10:00-Mon:12:00` (day, hour, minute, to day, hour, minute; it may wrap over
the week's end: `Sun:23:00-Mon:01:00`); a blocked date is `YYYY-MM-DD`. Owns parsing and the
pure question "is this instant inside?"; the instant is a POSIX time, always read as UTC.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEK = 7 * 24 * 60  # minutes
_PATTERN = re.compile(r"^(\w{3}):(\d\d):(\d\d)-(\w{3}):(\d\d):(\d\d)$")


@dataclass(frozen=True)
class Window:
    """Minutes since Monday 00:00 UTC: `start` included, `end` excluded."""

    start: int
    end: int
    text: str

    def contains(self, when: float) -> bool:
        minute = week_minute(when)
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # it wraps over Sunday night

    def __str__(self) -> str:
        return self.text


def week_minute(when: float) -> int:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.weekday() * 24 * 60 + moment.hour * 60 + moment.minute


def utc_date(when: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).date()


def _minute(day: str, hour: str, minute: str, text: str) -> int:
    if day not in DAYS:
        raise ValueError(f"{text!r}: {day!r} is not a day ({', '.join(DAYS)})")
    if int(hour) > 23 or int(minute) > 59:
        raise ValueError(f"{text!r}: {hour}:{minute} is not a time of day (00:00-23:59)")
    return DAYS.index(day) * 24 * 60 + int(hour) * 60 + int(minute)


def parse_window(value: Any) -> Window:
    if not isinstance(value, str) or not (match := _PATTERN.match(value.strip())):
        raise ValueError(
            f"{value!r} is not a window: write DAY:HH:MM-DAY:HH:MM in UTC, e.g. Mon:10:00-Mon:12:00"
        )
    text = value.strip()
    day, hour, minute, to_day, to_hour, to_minute = match.groups()
    start = _minute(day, hour, minute, text)
    end = _minute(to_day, to_hour, to_minute, text)
    if start == end:
        raise ValueError(f"{text!r}: a window must not be empty")
    return Window(start, end, text)


def parse_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2026-12-24 as a date
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date: write YYYY-MM-DD (UTC)") from None


WindowText = Annotated[Window, BeforeValidator(parse_window)]
BlockedDate = Annotated[datetime.date, BeforeValidator(parse_date)]
