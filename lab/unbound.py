"""unbound as the ACME clients' recursive resolver: 127.0.0.1:53, a stub zone to the lab's BIND.

It caches answers for their TTL, as clients' resolvers do, so a flip reaches clients only when
the TTL they hold has run out. It listens on port 53 because resolv.conf has no port syntax;
that is only possible inside the lab's own network namespace (`make test` runs there).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from lab.net import LOOPBACK
from lab.process import LabError, ManagedProcess

CONFIG = """\
server:
  interface: 127.0.0.1
  port: 53
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  verbosity: 1
stub-zone:
  name: "example.test."
  stub-addr: 127.0.0.1@{port}
remote-control:
  control-enable: no
"""


class Unbound(ManagedProcess):
    port = 53

    def __init__(self, directory: Path, stub_port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "unbound.conf"
        config.write_text(CONFIG.format(dir=directory, port=stub_port))
        checked = subprocess.run(["unbound-checkconf", str(config)], capture_output=True,
                                 text=True, check=False)  # fmt: skip
        if checked.returncode != 0:
            raise LabError(f"unbound-checkconf: {checked.stdout}{checked.stderr}")
        self.resolv_conf = directory / "resolv.conf"
        self.resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        super().__init__("unbound", ["unbound", "-d", "-c", str(config)], directory / "unbound.log")

    def start(self) -> None:
        super().start()
        # A query lost while it starts is asked again soon, not waited on for 1 s.
        self.wait_until(lambda: self.resolve("ns1.example.test.", "A", 0.1) == ["127.0.0.1"])

    def resolve(self, name: str, rdtype: str, timeout: float = 1.0) -> list[str]:
        """What a client would get: a recursive query (following CNAMEs)."""
        response = dns.query.udp(dns.message.make_query(name, rdtype), LOOPBACK, port=53,
                                 timeout=timeout)  # fmt: skip
        wanted = dns.rdatatype.from_text(rdtype)
        return sorted(rd.to_text() for r in response.answer if r.rdtype == wanted for rd in r)
