"""Loopback ports and the network-namespace guard."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP and UDP port on 127.0.0.1 that nothing uses right now, and never handed out
    before in this process: two servers whose ports are chosen before either binds (a BIND
    primary and its secondary) must not get the same one (named listens with SO_REUSEPORT:
    both would start, and share its queries and updates)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


LAB_INTERFACES = "dfl"  # the prefix of the bridge and veths that lab/sites.py creates


def network_is_isolated() -> bool:
    """True inside a network namespace (`unshare -n`) whose interfaces are loopback and the
    ones the lab itself created (lab/sites.py), all of them inside that namespace."""
    names = [name for _, name in socket.if_nameindex()]
    return "lo" in names and all(n == "lo" or n.startswith(LAB_INTERFACES) for n in names)
