"""After a flip is served by every authoritative server: is it what clients get?

A client resolves the public name and connects there, presenting that name. So, for the new
target, within a bounded window:

1. where clients are sent: with `verify_resolvers`, ask those resolvers for the public name
   (as clients' resolvers would; they may still hold the old answer for a TTL, so ask again
   until the answer is the new record); without, the written record itself — for A/AAAA its
   addresses, for a CNAME the target instance's own directory host;
2. the ACME probe there, as a client: SNI and Host the public name, its certificate required
   to cover it, directory and nonce.

The window is the TTL clients may hold (raised to `resolver_min_ttl`) plus 10 s. The outcome
goes to the audit log and metrics; a failure raises the alarm and changes nothing by itself
(policy decides, from health, as always). An instance without an ACME check is not verified.
Imports probes, config, values and the authority's address parsing; never the daemon, never a
provider's writes.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.resolver

from dnsfailover.config.models import Instance, Service
from dnsfailover.probes.acme import AcmeProbe
from dnsfailover.providers.authority import split_host_port
from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.rrset import RRset

SLACK = 10.0  # seconds past the client TTL before verification gives up
RETRY = 0.5


@dataclass(frozen=True)
class Verification:
    ok: bool
    seconds: float  # from the start of verification to success, or to giving up
    reason: str
    through: str  # "resolver 127.0.0.1:53" or "the written record"
    address: str | None = None  # where the client connected

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "through": self.through,
            "address": self.address,
        }


def window(service: Service) -> float:
    return max(service.ttl, service.resolver_min_ttl or 0) + SLACK


def _with_host(url: str, address: str) -> str:
    split = urlsplit(url)
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    netloc = host + (f":{split.port}" if split.port else "")
    return split._replace(netloc=netloc).geturl()


class ClientVerifier:
    """Verifies one service's flips; `verify` runs on a worker thread, never on the
    controller's."""

    def __init__(self, service: Service, connect_timeout: float | None = None) -> None:
        self.service = service
        self.public_name = service.name.rstrip(".")
        self.connect_timeout = connect_timeout
        self._resolver: dns.resolver.Resolver | None = None
        if service.verify_resolvers:
            resolver = dns.resolver.Resolver(configure=False)
            pairs = [split_host_port(r) for r in service.verify_resolvers]
            resolver.nameservers = [host for host, _ in pairs]
            resolver.port = pairs[0][1]
            resolver.lifetime = service.checks.timeout
            self._resolver = resolver

    @property
    def through(self) -> str:
        if self.service.verify_resolvers:
            return "resolver " + ", ".join(self.service.verify_resolvers)
        return "the written record"

    def verify(self, instance: Instance, record: RRset, deadline: float) -> Verification:
        """Until the client's view serves `instance` for the public name, or `deadline`."""
        start = time.monotonic()
        if instance.acme is None:
            return Verification(True, 0.0, "no acme check: not verified", self.through)
        reason, address = "not tried", None
        while True:
            address, problem = self._destination(instance, record)
            if problem is None:
                result = self._probe(instance, address)
                if result.outcome is Outcome.HEALTHY:
                    elapsed = time.monotonic() - start
                    return Verification(True, elapsed, result.reason, self.through, address)
                reason = result.reason
            else:
                reason = problem
            if time.monotonic() + RETRY >= deadline:
                elapsed = time.monotonic() - start
                return Verification(False, elapsed, reason, self.through, address)
            time.sleep(RETRY)

    def _destination(self, instance: Instance, record: RRset) -> tuple[str | None, str | None]:
        """(address to connect to, None) or (None, why the client would not get there yet).
        The address None means: the instance's own directory host."""
        if self._resolver is None:
            if record.rdtype in ("A", "AAAA"):
                return record.values[0], None
            return None, None
        rdtype = "AAAA" if record.rdtype == "AAAA" else "A"
        try:
            answer = self._resolver.resolve(self.public_name, rdtype, raise_on_no_answer=True)
        except (dns.exception.DNSException, OSError) as e:
            return None, f"the resolver does not answer {self.public_name} {rdtype}: {e}"
        if record.rdtype == "CNAME":
            cname = str(answer.canonical_name).lower()
            if cname != record.values[0]:
                return None, f"the resolver still answers {cname}, not {record.values[0]}"
        addresses = sorted(r.to_text() for r in answer)
        if record.rdtype in ("A", "AAAA") and addresses != list(record.values):
            return None, f"the resolver still answers {', '.join(addresses)}"
        return addresses[0], None

    def _probe(self, instance: Instance, address: str | None) -> ProbeResult:
        assert instance.acme is not None
        settings = instance.acme
        if address is not None:
            settings = settings.model_copy(
                update={"directory": _with_host(settings.directory, address)}
            )
        probe = AcmeProbe(
            settings, connect_timeout=self.connect_timeout, public_name=self.public_name
        )
        return probe.run(time.monotonic() + self.service.checks.timeout)
