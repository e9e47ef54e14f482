"""Checks that need more than one block of the config at once.

Each check returns problems as (key path, message) pairs, or warnings the operator should
read but that do not stop the daemon. Imports only the config models.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from dnsfailover.config.models import (
    ProviderSettings,
    Rfc2136Settings,
    Route53Settings,
    Service,
    ZoneFileSettings,
)
from dnsfailover.config.yamlsource import Path_

Finding = tuple[Path_, str]


def provider_zone(provider: ProviderSettings) -> str | None:
    """The zone a provider writes to, when the config names it."""
    if isinstance(provider, Rfc2136Settings | Route53Settings | ZoneFileSettings):
        return provider.zone
    return None


def in_zone(name: str, zone: str) -> bool:
    return zone == "." or name == zone or name.endswith("." + zone)


def check_provider_reference(key: str, service: object, provider_names: set[str]) -> list[Finding]:
    """A service names a provider that exists; checked on the raw data, so it is always run."""
    name = service.get("provider") if isinstance(service, dict) else None
    if not isinstance(name, str) or name in provider_names:
        return []
    known = ", ".join(sorted(provider_names)) or "none"
    return [(("services", key, "provider"), f"no provider {name!r} (known: {known})")]


def check_service(
    key: str,
    service: Service,
    providers: Mapping[str, ProviderSettings],
) -> tuple[list[Finding], list[Finding]]:
    """Return (errors, warnings) for one service that validated on its own."""
    here: Path_ = ("services", key)
    errors: list[Finding] = []
    warnings: list[Finding] = []
    zone = provider_zone(providers[service.provider]) if service.provider in providers else None
    if zone is not None and not in_zone(service.name, zone):
        errors.append(((*here, "name"), f"{service.name} is not inside the zone {zone}"))
    if zone is not None and service.name == zone:
        errors.append(((*here, "name"), "the zone apex cannot hold a CNAME and is never managed"))
    if len(service.instances) < 2:
        errors.append(((*here, "instances"), "a service needs at least two instances to fail over"))
    seen: dict[str, int] = {}
    for index, instance in enumerate(service.instances):
        at: Path_ = (*here, "instances", index)
        if instance.name in seen:
            errors.append(
                ((*at, "name"), f"{instance.name!r} is already instances[{seen[instance.name]}]")
            )
        seen.setdefault(instance.name, index)
        errors.extend(_record_problems(service, instance.target, instance.addresses, at))
        checks = [c for c in (instance.acme, instance.ocsp, instance.crl) if c is not None]
        if not checks:
            errors.append((at, "an instance needs at least one check: acme, ocsp or crl"))
        elif not any(c.required for c in checks):
            errors.append((at, "every check is `required: false`: one must decide health"))
    if service.ttl > service.hold_down:
        warnings.append(
            (
                (*here, "ttl"),
                f"TTL {service.ttl}s is longer than hold_down: resolvers may still "
                "send clients to the old instance after the next flip is allowed",
            )
        )
    return errors, warnings


def _record_problems(
    service: Service,
    target: str | None,
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...],
    at: Path_,
) -> list[Finding]:
    if service.type == "CNAME":
        found: list[Finding] = []
        if target is None:
            found.append(((*at, "target"), "CNAME services need a target"))
        if addresses:
            found.append(((*at, "addresses"), "CNAME services take a target, not addresses"))
        return found
    version = 4 if service.type == "A" else 6
    if target is not None:
        return [((*at, "target"), f"{service.type} services take addresses, not a target")]
    if not addresses:
        return [((*at, "addresses"), f"{service.type} services need addresses")]
    wrong = [str(a) for a in addresses if a.version != version]
    if wrong:
        return [((*at, "addresses"), f"not IPv{version} ({service.type}): {', '.join(wrong)}")]
    return []
