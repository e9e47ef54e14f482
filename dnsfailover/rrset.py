"""The DNS data every layer talks about: one RRset of a managed name, as a value.

Values are canonical (lower-case names with the trailing dot, compressed IP addresses) and
sorted, so two RRsets compare equal exactly when a DNS server would serve the same data.
Imports nothing from the rest of the package.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

RECORD_TYPES = ("CNAME", "A", "AAAA")


def canonical_value(rdtype: str, value: str) -> str:
    value = value.strip()
    if rdtype == "CNAME":
        name = value.lower()
        return name if name.endswith(".") else name + "."
    if rdtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(value))
    if rdtype == "TXT":  # only ever the fence record (below); never a managed record
        return value
    raise ValueError(f"unsupported record type {rdtype}")


def canonical_name(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


@dataclass(frozen=True)
class RRset:
    name: str
    rdtype: str
    ttl: int
    values: tuple[str, ...]

    @classmethod
    def of(cls, name: str, rdtype: str, ttl: int, values: Iterable[str]) -> RRset:
        rdtype = rdtype.upper()
        canonical = sorted({canonical_value(rdtype, v) for v in values})
        if not canonical:
            raise ValueError(f"an RRset for {name} {rdtype} needs at least one value")
        if rdtype == "CNAME" and len(canonical) > 1:
            raise ValueError(f"{name}: a CNAME RRset holds exactly one value")
        return cls(canonical_name(name), rdtype, ttl, tuple(canonical))

    def same_data(self, other: RRset | None) -> bool:
        """Same values, whatever the TTL (what a client would be sent to)."""
        return other is not None and other.values == self.values

    def text(self) -> str:
        return ", ".join(self.values)

    def zone_lines(self) -> list[str]:
        return [f"{self.name} {self.ttl} IN {self.rdtype} {v}" for v in self.values]


def same_values(a: RRset | None, b: RRset | None) -> bool:
    """Both absent, or both present with the same values (TTL aside, as RFC 2136 §2.4.2)."""
    if a is None or b is None:
        return a is None and b is None
    return a.values == b.values


def describe(rrset: RRset | None) -> str:
    return "(absent)" if rrset is None else rrset.text()


@dataclass(frozen=True)
class Change:
    """Replace `before` (what was just read; None when absent) with `after`."""

    before: RRset | None
    after: RRset

    @property
    def name(self) -> str:
        return self.after.name

    @property
    def rdtype(self) -> str:
        return self.after.rdtype

    def summary(self) -> str:
        return f"{self.name} {self.rdtype}: {describe(self.before)} -> {self.after.text()}"


FENCE_LABEL = "_dnsfailover"
FENCE_TTL = 60


@dataclass(frozen=True)
class Fence:
    """The fencing token of the leader that writes, kept in a TXT record next to the managed
    name (`_dnsfailover.<name>`; never at the name itself, which may be a CNAME). A write
    carries "the fence holds `before`" as a precondition and moves it to `after` (the writer's
    token) in the same atomic request; a deposed leader's token is lower than the fence, so
    the DNS server itself refuses its writes."""

    name: str  # the managed name
    before: int | None  # the token the fence holds now (None: no fence yet)
    after: int  # this leader's token

    @property
    def owner(self) -> str:
        return f"{FENCE_LABEL}.{self.name}"

    @staticmethod
    def text(token: int) -> str:
        return f'"epoch={token}"'

    @staticmethod
    def parse(name: str, values: Iterable[str] | None) -> int | None:
        """The token in a fence record's values (None when there is no record)."""
        if values is None:
            return None
        found = list(values)
        if len(found) == 1:
            body = found[0].replace('"', "")
            if body.startswith("epoch=") and body[6:].isdigit():
                return int(body[6:])
        raise ValueError(
            f"{FENCE_LABEL}.{name} TXT holds {found}: not a dnsfailover fence (epoch=N); "
            "remove it or choose another name"
        )
