"""BIND 9 primary and secondary on loopback: TSIG-signed RFC 2136 updates, NOTIFY and IXFR."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from lab.net import LOOPBACK, free_port
from lab.process import LabError, ManagedProcess

ZONE = "example.test."
UPDATE_KEY = "ddns-key."
MANAGED = ("acme.example.test.", "ocsp.example.test.")

ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@        IN SOA ns1.example.test. hostmaster.example.test. 2026010100 3600 600 1209600 60
         IN NS  ns1.example.test.
ns1      IN A   127.0.0.1
ca-a     IN A   127.0.0.1
ca-b     IN A   127.0.0.1
acme  60 IN CNAME ca-a.example.test.
ocsp  60 IN A   127.0.0.10
ocsp  60 IN A   127.0.0.11
other 60 IN CNAME ca-a.example.test.
"""


def zone_text(hosts: dict[str, str]) -> str:
    """ZONE_TEXT with other addresses for the instances' own names."""
    lines = ZONE_TEXT.splitlines()
    for host, address in hosts.items():
        lines = [line for line in lines if not line.startswith(f"{host} ")]
        lines.append(f"{host} IN A {address}")
    return "\n".join(lines) + "\n"


_OPTIONS = """\
include "{keys}/ddns.key";
include "{keys}/xfr.key";
include "{keys}/other.key";
options {{
  directory "{dir}"; pid-file "{dir}/named.pid"; session-keyfile "{dir}/session.key";
  listen-on port {port} {{ {listen} }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; {extra}
}};
controls {{ }};
"""

_PRIMARY_ZONE = """\
zone "example.test" {{ type primary; file "example.test.zone";
  update-policy {{ {grants} }}; }};
"""

_SECONDARY_ZONE = """\
zone "example.test" {{ type secondary; file "example.test.zone";
  primaries {{ 127.0.0.1 port {primary_port} key xfr-key; }}; }};
"""


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: str
    path: Path


def tsig_keygen(name: str, path: Path, algorithm: str = "hmac-sha256") -> TsigKey:
    done = subprocess.run(
        ["tsig-keygen", "-a", algorithm, name.rstrip(".")],
        capture_output=True,
        text=True,
        check=True,
    )
    path.write_text(done.stdout)
    secret = re.search(r'secret "([^"]+)"', done.stdout)
    if secret is None:
        raise LabError(f"tsig-keygen printed no secret: {done.stdout!r}")
    return TsigKey(name, algorithm, secret.group(1), path)


class AuthoritativeServer(ManagedProcess):
    """A name server of the lab on 127.0.0.1:`port`, asked with RD off, as a verifier asks."""

    port: int

    def query(self, name: str, rdtype: str, timeout: float = 1.0) -> dns.message.Message:
        request = dns.message.make_query(name, rdtype)
        request.flags &= ~dns.flags.RD
        return dns.query.udp(request, LOOPBACK, port=self.port, timeout=timeout)

    def soa_serial(self, timeout: float = 1.0) -> int | None:
        response = self.query(ZONE, "SOA", timeout)
        if not response.flags & dns.flags.AA or not response.answer:
            return None
        return int(response.answer[0][0].serial)  # type: ignore[attr-defined]

    def rrset(self, name: str, rdtype: str) -> set[str]:
        """The record's values as this server serves them (empty when absent)."""
        response = self.query(name, rdtype)
        wanted = dns.rdatatype.from_text(rdtype)
        return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}


class NamedServer(AuthoritativeServer):
    def __init__(self, name: str, directory: Path, port: int, config: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port
        conf = directory / "named.conf"
        conf.write_text(config)
        checked = subprocess.run(
            ["named-checkconf", str(conf)], capture_output=True, text=True, check=False
        )
        if checked.returncode != 0:
            raise LabError(f"named-checkconf {conf}: {checked.stdout}{checked.stderr}")
        super().__init__(name, ["named", "-g", "-n", "1", "-c", str(conf)], directory / "named.log")

    def start(self) -> None:
        super().start()
        # A query that named drops while it starts is asked again soon, not waited on for 1 s.
        self.wait_until(lambda: self.soa_serial(timeout=0.05) is not None)


_FILE_ZONE = """\
zone "example.test" {{ type primary; file "{file}"; }};
"""


def file_server(directory: Path, zone_file: Path) -> NamedServer:
    """A BIND that serves `zone_file` as it is on disk (no dynamic updates): SIGHUP reloads it,
    as `rndc reload` would (the lab runs named without a control channel)."""
    port = free_port()
    options = _OPTIONS.format(
        keys=_empty_keys(directory), dir=directory, port=port, extra="", listen=f"{LOOPBACK};"
    )
    return NamedServer("bind-file", directory, port, options + _FILE_ZONE.format(file=zone_file))


def _empty_keys(directory: Path) -> Path:
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name in ("ddns.key", "xfr.key", "other.key"):
        (keys / name).write_text("")
    return keys


class BindPair:
    """A primary that takes signed updates for MANAGED names, and a secondary fed by IXFR."""

    def __init__(
        self,
        directory: Path,
        notify_delay: int = 0,
        hosts: dict[str, str] | None = None,
        address: str = LOOPBACK,
    ) -> None:
        """`hosts`: addresses for the instances' own names (default: ca-a and ca-b at
        127.0.0.1), e.g. {"ca-a": "127.0.0.2", "ca-b": "127.0.0.3"} for clients to reach.
        `address`: where both servers also listen (a bridge address, for sites)."""
        self.address = address
        listen = " ".join(f"{a};" for a in dict.fromkeys((LOOPBACK, address)))
        keys = directory / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        self.update_key = tsig_keygen(UPDATE_KEY, keys / "ddns.key")
        self.xfr_key = tsig_keygen("xfr-key.", keys / "xfr.key")
        # A valid key that the update policy does not grant anything to.
        self.other_key = tsig_keygen("other-key.", keys / "other.key")
        primary_port, secondary_port = free_port(), free_port()
        # The managed names, and the fence record next to each (several controllers).
        grants = " ".join(
            f"grant ddns-key name {name} A AAAA CNAME TXT; "
            f"grant ddns-key name _dnsfailover.{name} TXT;"
            for name in MANAGED
        )
        primary_extra = (
            f"notify explicit; also-notify {{ 127.0.0.1 port {secondary_port}; }}; "
            f"notify-delay {notify_delay}; notify-rate 1000; allow-transfer {{ key xfr-key; }};"
        )
        (directory / "primary").mkdir(exist_ok=True)
        (directory / "primary" / "example.test.zone").write_text(zone_text(hosts or {}))
        self.primary = NamedServer(
            "bind-primary",
            directory / "primary",
            primary_port,
            _OPTIONS.format(
                keys=keys,
                dir=directory / "primary",
                port=primary_port,
                extra=primary_extra,
                listen=listen,
            )
            + _PRIMARY_ZONE.format(grants=grants),
        )
        self.secondary = NamedServer(
            "bind-secondary",
            directory / "secondary",
            secondary_port,
            _OPTIONS.format(
                keys=keys,
                dir=directory / "secondary",
                port=secondary_port,
                listen=listen,
                extra="allow-notify { 127.0.0.1; }; notify no; serial-query-rate 1000;",
            )
            + _SECONDARY_ZONE.format(primary_port=primary_port),
        )

    @property
    def servers(self) -> tuple[NamedServer, NamedServer]:
        return self.primary, self.secondary

    @property
    def verify_servers(self) -> list[str]:
        return [f"{self.address}:{s.port}" for s in self.servers]

    def start(self) -> None:
        self.primary.start()
        self.secondary.start()

    def stop(self) -> None:
        self.secondary.stop()
        self.primary.stop()
