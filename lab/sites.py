"""Sites: network namespaces on a bridge, inside the lab's own namespace (LAB.md, "Sites").

The bridge (`dflbr0`, 10.99.0.1/24) lives in the namespace `make test` runs in (`unshare -n`),
never on the host's network. Servers that sites must reach listen on addresses added to the
bridge (`serve_address`). Each site is a holder process (`unshare -n sleep infinity`) whose
namespace has one veth (`eth0`) to the bridge; commands run there through `nsenter`. Killing
the holder removes the site and its veth. A partition is a real packet filter inside one
site (nftables: packets to the cut addresses are dropped, so TCP hangs as it would on a real
network), never a switch in our code; `heal` removes it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
from collections.abc import Iterable, Sequence

from lab.net import network_is_isolated
from lab.process import LabError

BRIDGE = "dflbr0"
NETWORK = "10.99.0"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")


_veths = itertools.count(1)  # veth names stay unique while an old namespace is torn down


class Site:
    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.address = f"{NETWORK}.{100 + index}"
        self.veth = f"dflv{next(_veths)}"
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sleep", "infinity"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_for_namespace()
            _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns",
                str(self.holder.pid))  # fmt: skip
            _ip("link", "set", self.veth, "master", BRIDGE, "up")
            self.run_checked("sh", "-c", f"ip link set lo up && ip addr add {self.address}/24 "
                             "dev eth0 && ip link set eth0 up")  # fmt: skip
        except Exception:
            self.close()
            raise

    def _wait_for_namespace(self) -> None:
        """unshare has made its namespace once /proc/PID/ns/net differs from ours."""
        mine = os.readlink("/proc/self/ns/net")
        for _ in range(200):
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/net") != mine:
                    return
            except OSError:
                pass
            subprocess.run(["sleep", "0.01"], check=False)
        raise LabError(f"site {self.name}: its namespace did not appear")

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` to run inside this site."""
        return ["nsenter", "-t", str(self.holder.pid), "-n", "--", *argv]

    def run_checked(self, *argv: str) -> str:
        done = subprocess.run(self.command(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LabError(f"site {self.name}: {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def cut(self, addresses: Iterable[str]) -> None:
        """Drop every packet this site sends to `addresses` (TCP hangs, UDP fails)."""
        self.heal()
        self.run_checked("nft", "add", "table", "inet", "fault")
        self.run_checked("nft", "add", "chain", "inet", "fault", "out",
                         "{ type filter hook output priority 0; policy accept; }")  # fmt: skip
        for address in addresses:
            self.run_checked("nft", "add", "rule", "inet", "fault", "out", "ip", "daddr",
                             address, "drop")  # fmt: skip

    def heal(self) -> None:
        subprocess.run(self.command(["nft", "delete", "table", "inet", "fault"]),
                       capture_output=True, check=False)  # fmt: skip

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, check=False)
        if self.holder.poll() is None:
            os.kill(self.holder.pid, signal.SIGKILL)
            self.holder.wait()


class Sites:
    """The bridge and its sites; `close` removes all of it."""

    name = "sites"

    def __init__(self) -> None:
        if not network_is_isolated():
            raise LabError(
                "sites add a bridge and veths: run the lab inside its own network namespace "
                "(`make test` does: unshare -n), never on the host's network"
            )
        self.sites: dict[str, Site] = {}
        self._served: list[str] = []
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{NETWORK}.1/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")

    def serve_address(self, last_octet: int) -> str:
        """Another address on the bridge, for a server that the sites reach."""
        address = f"{NETWORK}.{last_octet}"
        _ip("addr", "add", f"{address}/24", "dev", BRIDGE)
        self._served.append(address)
        return address

    def add(self, name: str) -> Site:
        site = Site(name, len(self.sites) + 1)
        self.sites[name] = site
        return site

    def stop(self) -> None:
        for site in self.sites.values():
            site.close()
        self.sites.clear()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)

    def log_tail(self, lines: int = 40) -> str:
        return ", ".join(
            f"{s.name} {s.address} (holder {s.holder.pid})" for s in self.sites.values()
        )
