"""Real ACME clients from Debian, lego and certbot, issuing through the public name.

Each runs in a mount namespace of its own whose /etc/resolv.conf names the lab's unbound, so
it resolves `acme.example.test` exactly as a client in production would, then connects there
presenting the name (the Pebbles' certificates cover it; the lab CA is trusted). Every run
uses a fresh account: the lab's Pebbles share no database, so an account made on one is
unknown to the other (production Boulder or step-ca instances share theirs, and existing
clients continue after a flip). Pebble validates every challenge (PEBBLE_VA_ALWAYS_VALID), so
the clients' challenge servers on 127.0.0.1 are never reached.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.bind import BindPair
from lab.pebble import Pebble
from lab.process import LabError
from lab.scenario import NAME, DaemonProcess, wait_for, write_config
from lab.unbound import Unbound

DOMAIN = "test.example"
CHALLENGE = "127.0.0.1:5002"
MOUNT = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'


@dataclass(frozen=True)
class Issuance:
    client: str
    ok: bool
    seconds: float
    output: str  # the tail of what the client printed


def _run(argv: list[str], resolver: Unbound, env: dict[str, str], timeout: float) -> Issuance:
    started = time.monotonic()
    command = ["unshare", "-m", "sh", "-c", MOUNT, str(resolver.resolv_conf), *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **env}, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        return Issuance(argv[0], False, time.monotonic() - started, f"timed out; {tail[-300:]}")
    output = (done.stdout + done.stderr).strip()
    return Issuance(argv[0], done.returncode == 0, time.monotonic() - started, output[-600:])


def lego(directory_url: str, ca: Path, work: Path, resolver: Unbound, timeout: float = 20.0
         ) -> Issuance:  # fmt: skip
    """One issuance with a fresh account (its own --path)."""
    argv = ["lego", "--server", directory_url, "--accept-tos", "--email", "admin@example.test",
            "--domains", DOMAIN, "--http", "--http.port", CHALLENGE, "--http-timeout", "5",
            "--path", str(work), "run"]  # fmt: skip
    return _run(argv, resolver, {"LEGO_CA_CERTIFICATES": str(ca)}, timeout)


def certbot(directory_url: str, ca: Path, work: Path, resolver: Unbound, timeout: float = 40.0
            ) -> Issuance:  # fmt: skip
    """One issuance with a fresh account (its own config, work and logs directories)."""
    argv = ["/usr/bin/certbot", "certonly", "--standalone", "--server", directory_url,
            "--agree-tos", "-m", "admin@example.test", "--non-interactive", "-d", DOMAIN,
            "--http-01-port", CHALLENGE.split(":")[1], "--http-01-address", "127.0.0.1",
            "--config-dir", str(work / "config"), "--work-dir", str(work / "work"),
            "--logs-dir", str(work / "logs")]  # fmt: skip
    return _run(argv, resolver, {"REQUESTS_CA_BUNDLE": str(ca)}, timeout)


HOSTS = {"ca-a": "127.0.0.2", "ca-b": "127.0.0.3"}  # the instances' addresses in the zone


@dataclass
class ClientScene:
    """Two Pebbles on one port at two addresses, BIND, unbound, the daemon (TTL 2 s, flips
    verified through unbound), and the public URL the clients use."""

    lab: Any
    a: Pebble
    b: Pebble
    bind: BindPair
    unbound: Unbound
    daemon: DaemonProcess
    config: Path
    work: Path
    runs: int = 0

    @classmethod
    def build(cls, lab: Any, work: Path, service: dict[str, Any] | None = None) -> ClientScene:
        a = lab.pebble("ca-a", address=HOSTS["ca-a"])
        b = lab.pebble("ca-b", address=HOSTS["ca-b"], port=a.port)
        bind = lab.bind(hosts=HOSTS)
        unbound = lab.unbound(bind)
        settings = {"ttl": 2, "verify_resolvers": ["127.0.0.1:53"], **(service or {})}
        config = write_config(work / "config.yaml", lab, bind, [a, b], settings)
        daemon = lab.daemon(config)
        wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
        wait_for(lambda: _ttl(bind) == settings["ttl"], 10, "the service's TTL written")
        return cls(lab, a, b, bind, unbound, daemon, config, work)

    @property
    def url(self) -> str:
        return f"https://acme.example.test:{self.a.port}/dir"

    def issue(self, client: str = "lego") -> Issuance:
        self.runs += 1
        run = lego if client == "lego" else certbot
        work = self.work / f"{client}-{self.runs}"
        return run(self.url, self.lab.tls.cert_path, work, self.unbound)

    def issue_until_it_works(self, deadline: float) -> float:
        """Issue again and again until one succeeds; the seconds until it did."""
        started = time.monotonic()
        while time.monotonic() < started + deadline:
            if self.issue().ok:
                return time.monotonic() - started
        raise LabError(f"no issuance through {self.url} within {deadline}s")


def _ttl(bind: BindPair) -> int | None:
    response = bind.primary.query(NAME, "CNAME")
    return next((int(r.ttl) for r in response.answer), None)
