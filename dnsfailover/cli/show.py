"""`dnsfailover show WHAT`: print a file the package installs beside the code.

The wheel carries the systemd unit, the example and minimal configs, the alert rules and the
Grafana dashboard as data files under `<prefix>/share/dnsfailover/` (pyproject.toml's
`data-files`; the repository keeps one copy of each, in systemd/ and configs/). They are found
through the installed distribution's RECORD, so a venv, `--prefix /usr/local`, `--user` and an
editable install all answer the same way.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from dnsfailover.cli import exitcodes

FILES = {
    "unit": "dnsfailover.service",
    "alerts": "alerts.yaml",
    "dashboard": "dnsfailover.json",
    "example-config": "example.yaml",
    "minimal-config": "minimal.yaml",
}


def shared_file(name: str) -> Path | None:
    """Where the installed distribution put `share/dnsfailover/.../NAME`, or None."""
    try:
        files = metadata.distribution("dnsfailover").files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        parts = entry.parts
        if entry.name == name and "share" in parts and "dnsfailover" in parts[-3:-1]:
            return Path(str(entry.locate())).resolve()
    return None


def cmd_show(args: argparse.Namespace) -> int:
    name = FILES[args.what]
    path = shared_file(name)
    if path is None or not path.is_file():
        print(
            f"error: {name} is not installed with this copy of dnsfailover "
            "(install the wheel or the .deb; in a checkout it is in systemd/ or configs/)",
            file=sys.stderr,
        )
        return exitcodes.FAILURE
    if args.path:
        print(path)
    else:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    return exitcodes.OK
