"""`dnsfailover show WHAT`: print a file the package installs beside the code.

The wheel carries the systemd unit, the example and minimal configs, the alert rules and the
Grafana dashboard as data files under `<prefix>/share/dnsfailover/` (pyproject.toml's
`data-files`; the repository keeps one copy of each, in systemd/ and configs/). They are found
through the installed distribution's RECORD, so a venv, `--prefix /usr/local` and `--user` all
answer the same way; an editable install (setuptools installs no data files for it) answers from
the checkout it points at.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from dnsfailover.cli import exitcodes

# What → where the repository keeps it; installed as share/dnsfailover/[grafana/]BASENAME.
FILES = {
    "unit": "systemd/dnsfailover.service",
    "alerts": "configs/alerts.yaml",
    "dashboard": "configs/grafana/dnsfailover.json",
    "example-config": "configs/example.yaml",
    "minimal-config": "configs/minimal.yaml",
}
CHECKOUT = Path(__file__).resolve().parents[2]  # meaningful only for an editable install


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
    source = FILES[args.what]
    name = Path(source).name
    path = shared_file(name)
    if path is None and (CHECKOUT / "pyproject.toml").is_file():
        path = CHECKOUT / source
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
