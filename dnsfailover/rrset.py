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
