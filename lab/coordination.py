"""Three controllers in three sites, one etcd cluster, two Pebble CAs and BIND: the lab for
several controllers (tests/integration/test_coordination.py, bench/coordination.py).

Everything the sites reach listens on the bridge (lab/sites.py): BIND and the CAs on
10.99.0.1/.21/.22, each etcd member on an address of its own (10.99.0.2-4), so that a site can
be cut off from one server, or from etcd alone, with a packet filter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from lab.lab import Lab
from lab.process import LabError
from lab.scenario import NAME, DaemonProcess, wait_for, write_config
from lab.sites import NETWORK, Site

SITES = ("east", "west", "north")
METRICS_PORT = 9464  # in each site's own namespace
A, B = "ca-a.example.test.", "ca-b.example.test."


class Cluster:
    def __init__(self, lab: Lab, directory: Path, lease_ttl: str = "2s") -> None:
        self.lab = lab
        self.directory = directory
        self.sites_net = lab.sites()
        members = tuple(self.sites_net.serve_address(n) for n in (2, 3, 4))
        self.etcd = lab.etcd(members)
        self.ca_addresses = (self.sites_net.serve_address(21), self.sites_net.serve_address(22))
        self.a = lab.pebble("ca-a", address=self.ca_addresses[0])
        self.b = lab.pebble("ca-b", address=self.ca_addresses[1])
        self.bind = lab.bind(address=f"{NETWORK}.1")
        self.lease_ttl = lease_ttl
        self.sites: dict[str, Site] = {name: self.sites_net.add(name) for name in SITES}
        self.daemons: dict[str, DaemonProcess] = {}

    def config(self, site: str, coordinated: bool = True, **service: Any) -> Path:
        """The site's config; `coordinated=False`: one controller alone (the baseline)."""
        directory = self.directory / site
        directory.mkdir(parents=True, exist_ok=True)
        provider = {
            "type": "rfc2136",
            "server": self.bind.address,
            "zone": "example.test.",
            "port": self.bind.primary.port,
            "tsig": {"key_file": str(self.bind.update_key.path)},
            "timeout": "2s",  # two cores run three daemons, etcd, BIND and two CAs
            "verify_servers": self.bind.verify_servers,
            "propagation_timeout": "5s",
        }
        coordination = {
            "site": site,
            "sites": list(SITES),
            "etcd": {
                "endpoints": self.etcd.endpoints,
                "lease_ttl": self.lease_ttl,
                "timeout": "300ms",
            },
        }
        return write_config(
            directory / "config.yaml",
            self.lab,
            self.bind,
            [self.a, self.b],
            {"checks": {"interval": "1s", "timeout": "800ms", "rise": 2, "fall": 2}, **service},
            provider,
            **({"coordination": coordination} if coordinated else {}),
            metrics_listen=f"{self.sites[site].address}:{METRICS_PORT}",
        )

    def start(
        self,
        *sites: str,
        env: dict[str, str] | None = None,
        coordinated: bool = True,
        **service: Any,
    ) -> None:
        for site in sites or SITES:
            self.restart(site, env=env, coordinated=coordinated, **service)

    def restart(
        self, site: str, env: dict[str, str] | None = None, coordinated: bool = True, **service: Any
    ) -> None:
        """(Re)start the site's daemon with a fresh config (its state directory stays)."""
        config = self.config(site, coordinated, **service)
        self.daemons[site] = self.lab.daemon(config, env=env, site=self.sites[site])

    # ------------------------------------------------------------------ what they say

    def coordination(self, site: str) -> dict[str, Any]:
        health = self.daemons[site].health() or {}
        found = health.get("coordination") or {}
        return found if isinstance(found, dict) else {}

    def leader(self) -> str | None:
        """The site that leads and may write, by its own health.json (None: none, or two)."""
        leading = [
            s for s, d in self.daemons.items()
            if d.running() and not d.frozen and self.coordination(s).get("writing_allowed")
        ]  # fmt: skip
        return leading[0] if len(leading) == 1 else None

    def wait_leader(self, timeout: float = 15.0, other_than: str | None = None) -> str:
        wait_for(lambda: self.leader() not in (None, other_than), timeout, "one leader")
        leader = self.leader()
        assert leader is not None
        return leader

    def wait_fenced(self, site: str, timeout: float = 10.0) -> dict[str, Any]:
        """The leader moved the service's fence to its token (audit)."""
        token = self.coordination(site).get("token")

        def moved() -> dict[str, Any] | None:
            return next(
                (e for e in self.daemons[site].audit()
                 if e.get("event") == "fence" and e.get("fence") == token
                 and e.get("outcome") == "applied"),
                None,
            )  # fmt: skip

        wait_for(lambda: moved() is not None, timeout, f"{site} moves the fence")
        entry = moved()
        assert entry is not None
        return entry

    def settled(self) -> str:
        """Start every site's daemon; wait for a leader that moved its fence and for every
        site to see all three reporting. The leading site."""
        self.start()
        leader = self.wait_leader()
        self.wait_fenced(leader)
        for site in self.daemons:
            self.wait_reporting(site)
        return leader

    def wait_reporting(self, site: str, count: int = 3, timeout: float = 15.0) -> None:
        wait_for(lambda: len(self.coordination(site).get("reporting", [])) >= count, timeout,
                 f"{count} sites reporting to {site}")  # fmt: skip

    def served(self) -> set[str]:
        """The managed name's values on the primary (empty while it answers nothing)."""
        return self.bind.primary.rrset(NAME, "CNAME")

    def fence(self) -> set[str]:
        return self.bind.primary.rrset(f"_dnsfailover.{NAME}", "TXT")

    def cli(self, site: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`dnsfailover ARGV -c <site's config>`, run inside the site."""
        command = [sys.executable, "-m", "dnsfailover", *argv, "-c", str(self.config_path(site))]
        return subprocess.run(self.sites[site].command(command), capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def etcd_value(self, key: str) -> str | None:
        """A key's value, read with etcdctl from the lab's namespace."""
        done = subprocess.run(["etcdctl", "--endpoints", ",".join(self.etcd.endpoints),
                               "get", "--print-value-only", key],
                              capture_output=True, text=True, env={"ETCDCTL_API": "3"},
                              timeout=10, check=False)  # fmt: skip
        return done.stdout.strip() or None

    def metrics(self, site: str) -> str:
        """The site's daemon's /metrics, scraped from the lab's namespace over the bridge."""
        url = f"http://{self.sites[site].address}:{METRICS_PORT}/metrics"
        return requests.get(url, timeout=2).text

    def config_path(self, site: str) -> Path:
        return self.directory / site / "config.yaml"

    def state(self, site: str) -> dict[str, Any]:
        path = self.directory / site / "state" / "state.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def writes(self, site: str) -> list[dict[str, Any]]:
        """The moves the site's daemon wrote (accepted by the DNS, served everywhere or not)."""
        return [e for e in self.daemons[site].audit()
                if e.get("outcome") in ("applied", "applied_unconfirmed")
                and e.get("event") in ("failover", "manual")]  # fmt: skip


def is_stopped(pid: int, timeout: float = 20.0) -> None:
    """Wait until the process is in the stopped state (it SIGSTOPped itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.02)
    raise LabError(f"pid {pid} did not stop in {timeout}s")
