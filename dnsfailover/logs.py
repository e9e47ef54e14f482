"""Log setup: readable text by default, or one JSON object a line for journald and shippers.

Messages are written `event key=value ...` (STYLE.md); the JSON formatter lifts the event and
the pairs into fields, so `service`, `instance`, `event` and `reason` can be queried.
Imports nothing from the package.
"""

from __future__ import annotations

import json
import logging
import re
import sys

_PAIR = re.compile(r"(?:^|\s)([a-z_][a-z0-9_]*)=(.*?)(?=\s[a-z_][a-z0-9_]*=|$)")
NOISY = ("apscheduler", "urllib3", "botocore", "boto3", "tzlocal")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        document: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        head = message.split(" ", 1)[0]
        if re.fullmatch(r"[a-z_]+:?", head):
            document["event"] = head.rstrip(":")
        for key, value in _PAIR.findall(message):
            document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def setup(level: int, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
