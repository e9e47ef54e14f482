"""A ready-made failover scenario: two Pebble CAs behind one name on a BIND primary + secondary.

Writes a dnsfailover config for it and runs the daemon as a real process. Used by the
end-to-end tests, `make demo` and the benchmarks.
"""

from __future__ import annotations

import json
import math
import pwd
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lab.bind import MANAGED, ZONE, BindPair
from lab.lab import Lab
from lab.pebble import Pebble
from lab.process import LabError, ManagedProcess
from lab.sites import Site

NAME = MANAGED[0]  # acme.example.test.


def target_of(pebble: Pebble) -> str:
    return f"{pebble.name}.{ZONE}"


def write_config(
    path: Path,
    lab: Lab,
    bind: BindPair | None,
    pebbles: list[Pebble],
    service: dict[str, Any] | None = None,
    provider: dict[str, Any] | None = None,
    **top: Any,
) -> Path:
    """A config for `pebbles` behind NAME; `service` and `top` override its keys, and
    `provider` replaces the BIND provider (Route 53 on moto, a zone file)."""
    settings: dict[str, Any] = {
        "state_dir": str(path.parent / "state"),
        "control_socket": str(path.with_name(path.stem + ".control")),
        "providers": {
            "bind": provider
            or {
                "type": "rfc2136",
                "server": "127.0.0.1",
                "port": bind.primary.port if bind else 53,
                "zone": ZONE,
                "tsig": {"key_file": str(bind.update_key.path)},
                "timeout": "2s",
                "verify_servers": bind.verify_servers if bind else None,
                "propagation_timeout": "5s",
            }
        },
        "shutdown_grace": "2s",  # the lab stops daemons by SIGTERM, then SIGKILL after 5 s
        "services": {
            "acme": {
                "provider": "bind",
                "name": NAME,
                "ttl": 60,
                "checks": {"interval": "1s", "timeout": "800ms", "rise": 2, "fall": 2},
                "hold_down": "2s",
                "max_flips_per_hour": 60,
                "instances": [
                    {
                        "name": p.name,
                        "target": target_of(p),
                        "acme": {"directory": p.directory_url, "ca_bundle": str(lab.tls.cert_path)},
                    }
                    for p in pebbles
                ],
                **(service or {}),
            }
        },
        **top,
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


class DaemonProcess(ManagedProcess):
    """`dnsfailover run` as a child process, with its log in a file."""

    def __init__(
        self,
        config: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        verbose: bool = True,
        start_timeout: float = 30.0,
        site: Site | None = None,
        user: str | None = None,
    ) -> None:
        self.config = config
        self.start_timeout = start_timeout
        self.state_dir = Path(yaml.safe_load(config.read_text())["state_dir"])
        self.started_at = math.inf  # wall-clock time of the latest start (health.json's clock)
        argv = [sys.executable, "-m", "dnsfailover", *(["-v"] if verbose else [])]
        argv += ["run", "-c", str(config), *extra]
        if user is not None:  # an unprivileged daemon, as under the unit's DynamicUser=
            found = pwd.getpwnam(user)
            argv = ["setpriv", f"--reuid={found.pw_uid}", f"--regid={found.pw_gid}",
                    "--clear-groups", *argv]  # fmt: skip
        if site is not None:
            argv = site.command(argv)
        super().__init__(
            "dnsfailover",
            argv,
            config.parent / "daemon.log",
            env={"PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def start(self) -> None:
        self.started_at = time.time()
        super().start()
        self.wait_until(lambda: self.health() is not None, timeout=self.start_timeout)

    def health(self) -> dict[str, Any] | None:
        """Its health.json; None until this process wrote one (a document from before its
        start, left by an earlier daemon on the same state directory, is not its view)."""
        try:
            data = json.loads((self.state_dir / "health.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("updated"), int | float):
            return None
        return data if data["updated"] >= self.started_at else None

    def wait_cycles(self, count: int = 2, timeout: float = 30.0) -> None:
        """Let the daemon's time pass, its way: wait until it has rewritten health.json `count`
        more times (at the end of every cycle, after it reconciled each service, and when
        health changes). A test that proves nothing happens waits for this, then asserts."""
        first = (self.health() or {}).get("updated")
        seen: set[float] = set()

        def more() -> bool:
            updated = (self.health() or {}).get("updated")
            if updated is not None and updated != first:
                seen.add(updated)
            return len(seen) >= count

        wait_for(more, timeout, f"{count} more cycles of the daemon (health.json rewritten)")

    def log_count(self, text: str) -> int:
        """How many lines of its log since its latest start contain `text`."""
        return sum(text in line for line in self.log_since_start().splitlines())

    def audit(self) -> list[dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text().splitlines():
            try:  # the daemon may be writing the last line right now
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries


def zone_points_at(zone_file: Path, instance: str) -> bool:
    """The zone file's managed record (NAME) names `instance` now."""
    for line in zone_file.read_text().splitlines():
        fields = line.split()
        if fields[:1] in (["acme"], [NAME]) and fields[-1] in (instance, f"{instance}.{ZONE}"):
            return True  # the target as written: relative to the origin, or absolute
    return False


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.02) -> float:
    """Poll until `predicate()` is true; return the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise LabError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start
