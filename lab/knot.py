"""Knot DNS (`knotd`) on loopback: the lab's zone, TSIG-signed RFC 2136 updates through an ACL.

One primary, no secondary: the zone is loaded from a file, changes go to Knot's journal
(`zonefile-sync: -1` keeps the file as it was; the journal's directory must exist, or every
update that passes its prerequisites fails with SERVFAIL). The update ACL grants the managed
names and their `_dnsfailover.` fence TXT to the update key only. The second key may only
transfer the zone: Knot knows a key only through an ACL of the zone, and answers any other
one, on queries too, with BADKEY as if it did not exist.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from lab.bind import MANAGED, ZONE, AuthoritativeServer, TsigKey, zone_text
from lab.net import LOOPBACK, free_port

UPDATE_KEY = "ddns-key."
OTHER_KEY = "other-key."

_CONFIG = """\
server:
    listen: {address}@{port}
    rundir: "{dir}"
    pidfile: "{dir}/knot.pid"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

control:
    listen: "{dir}/knot.sock"

log:
  - target: stderr
    any: info

database:
    storage: "{dir}/db"

key:
{keys}

acl:
  - id: update
    key: {update_key}
    action: update
    update-owner: name
    update-owner-match: equal
    update-owner-name: [{names}]
    update-type: [A, AAAA, CNAME, TXT]
  - id: transfer
    key: {other_key}
    action: transfer

zone:
  - domain: {zone}
    storage: "{dir}"
    file: "{zone_file}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    semantic-checks: on
    acl: [update, transfer]
"""


def make_key(name: str, path: Path, algorithm: str = "hmac-sha256") -> TsigKey:
    """A random TSIG key, written in `tsig-keygen` format (what dnsfailover's key_file reads)."""
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    path.write_text(
        f'key "{name.rstrip(".")}" {{\n\talgorithm {algorithm};\n\tsecret "{secret}";\n}};\n'
    )
    return TsigKey(name, algorithm, secret, path)


def _key_entry(key: TsigKey) -> str:
    return f"  - id: {key.name}\n    algorithm: {key.algorithm}\n    secret: {key.secret}"


class AuthoritativeProcess(AuthoritativeServer):
    """A name server of the lab without a secondary (Knot, PowerDNS): queries as BIND's."""

    def start(self) -> None:
        super().start()
        self.wait_until(lambda: self.soa_serial() is not None)

    @property
    def primary(self) -> AuthoritativeProcess:
        """The server that takes updates (as BindPair.primary): this one, it has no secondary."""
        return self

    @property
    def verify_servers(self) -> list[str]:
        return [f"{LOOPBACK}:{self.port}"]


class KnotServer(AuthoritativeProcess):
    """`knotd` serving example.test. with the lab's zone on 127.0.0.1:`port`."""

    def __init__(self, directory: Path, hosts: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        keys = directory / "keys"
        keys.mkdir(exist_ok=True)
        (directory / "db").mkdir(exist_ok=True)  # the journal: updates fail without it
        self.update_key = make_key(UPDATE_KEY, keys / "ddns.key")
        self.other_key = make_key(OTHER_KEY, keys / "other.key")  # granted transfer only, no update
        (directory / "example.test.zone").write_text(zone_text(hosts or {}))
        names = ", ".join(n for name in MANAGED for n in (name, f"_dnsfailover.{name}"))
        self.port = free_port()
        conf = directory / "knot.conf"
        conf.write_text(
            _CONFIG.format(
                address=LOOPBACK,
                port=self.port,
                dir=directory,
                keys="\n".join(_key_entry(k) for k in (self.update_key, self.other_key)),
                update_key=self.update_key.name,
                other_key=self.other_key.name,
                names=names,
                zone=ZONE,
                zone_file=directory / "example.test.zone",
            )
        )
        super().__init__("knot", ["knotd", "-c", str(conf)], directory / "knotd.log")
