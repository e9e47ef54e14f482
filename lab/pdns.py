"""PowerDNS Authoritative (`pdns_server`, gsqlite3 backend) on loopback: RFC 2136 with TSIG.

The zone is loaded into a fresh SQLite database with `pdnsutil load-zone`; the update key is
imported with `pdnsutil import-tsig-key` and allowed by the zone's TSIG-ALLOW-DNSUPDATE
metadata; SOA-EDIT-DNSUPDATE is INCREASE, the serial plus one per update (unset, PowerDNS 4.7
uses DEFAULT, a YYYYMMDDnn serial; NONE leaves the serial as it was, and EPOCH lowers a
date-style one). PowerDNS has no per-name grant: a key allowed for the zone may change any name in
it. A second imported key is allowed nothing. Caches keep their defaults: an update purges the
zone's entries, so the next answer shows it.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from lab.bind import ZONE, TsigKey, zone_text
from lab.knot import OTHER_KEY, UPDATE_KEY, AuthoritativeProcess, make_key
from lab.net import LOOPBACK, free_port
from lab.process import LabError

SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")

_CONFIG = """\
launch=gsqlite3
gsqlite3-database={dir}/pdns.sqlite3
local-address={address}
local-port={port}
socket-dir={dir}
daemon=no
guardian=no
disable-syslog=yes
log-timestamp=yes
loglevel=6
webserver=no
api=no
primary=no
secondary=no
dnsupdate=yes
allow-dnsupdate-from={allow_from}
distributor-threads=1
receiver-threads=1
"""


class PdnsServer(AuthoritativeProcess):
    """`pdns_server` serving example.test. with the lab's zone on 127.0.0.1:`port`."""

    def __init__(
        self,
        directory: Path,
        hosts: dict[str, str] | None = None,
        soa_edit_dnsupdate: str | None = "INCREASE",
        allow_from: str = "127.0.0.0/8",
    ) -> None:
        """`soa_edit_dnsupdate`: the zone's SOA-EDIT-DNSUPDATE (None: not set);
        `allow_from`: allow-dnsupdate-from, the addresses updates may come from."""
        directory.mkdir(parents=True, exist_ok=True)
        keys = directory / "keys"
        keys.mkdir(exist_ok=True)
        self.directory = directory
        self.update_key = make_key(UPDATE_KEY, keys / "ddns.key")
        self.other_key = make_key(OTHER_KEY, keys / "other.key")  # imported, allowed nothing
        self.port = free_port()
        (directory / "pdns.conf").write_text(
            _CONFIG.format(dir=directory, address=LOOPBACK, port=self.port, allow_from=allow_from)
        )
        with sqlite3.connect(directory / "pdns.sqlite3") as db:
            db.executescript(SCHEMA.read_text())
        zone_file = directory / "example.test.zone"
        zone_file.write_text(zone_text(hosts or {}))
        self.pdnsutil("load-zone", ZONE, str(zone_file))
        for key in (self.update_key, self.other_key):
            self.import_key(key)
        self.pdnsutil("set-meta", ZONE, "TSIG-ALLOW-DNSUPDATE", self.update_key.name.rstrip("."))
        if soa_edit_dnsupdate is not None:
            self.pdnsutil("set-meta", ZONE, "SOA-EDIT-DNSUPDATE", soa_edit_dnsupdate)
        super().__init__(
            "pdns",
            ["pdns_server", f"--config-dir={directory}"],
            directory / "pdns.log",
        )

    def import_key(self, key: TsigKey) -> None:
        self.pdnsutil("import-tsig-key", key.name.rstrip("."), key.algorithm, key.secret)

    def pdnsutil(self, *args: str) -> str:
        done = subprocess.run(
            ["pdnsutil", f"--config-dir={self.directory}", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LabError(f"pdnsutil {args[0]}: {done.stdout}{done.stderr}")
        return done.stdout
