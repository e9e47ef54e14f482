"""Checks that need more than one block of the config at once.

Each check returns problems as (key path, message) pairs, or warnings the operator should
read but that do not stop the daemon. The checks that can run on the raw data do (duplicate
instance names, two services managing one record), so that they are reported in the same run
as a service's other mistakes, not only once every field of it parses. Imports only the
config models.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from dnsfailover.config.models import (
    Coordination,
    ProviderSettings,
    Rfc2136Settings,
    Route53Settings,
    Service,
    ZoneFileSettings,
)
from dnsfailover.config.yamlsource import Path_

Finding = tuple[Path_, str]

# systemd's LoadCredential= puts files here when the service starts; `validate` run by hand
# outside the service does not see them.
CREDENTIALS_DIR = "/run/credentials/"


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


def check_raw_instances(key: str, service: object) -> list[Finding]:
    """Instance names are unique within a service (on the raw data: always checked)."""
    instances = service.get("instances") if isinstance(service, dict) else None
    if not isinstance(instances, list):
        return []
    found: list[Finding] = []
    seen: dict[str, int] = {}
    for index, instance in enumerate(instances):
        name = instance.get("name") if isinstance(instance, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            at: Path_ = ("services", key, "instances", index, "name")
            found.append((at, f"{name!r} is already instances[{seen[name]}]"))
        seen.setdefault(name, index)
    return found


def check_distinct_records(services: Mapping[str, object]) -> list[Finding]:
    """No two services manage the same name and type through the same provider: they would
    fight over it, or each would see the other's value as drift for ever."""
    owners: dict[tuple[str, str, str], str] = {}
    found: list[Finding] = []
    for key, service in services.items():
        if not isinstance(service, dict):
            continue
        provider, name = service.get("provider"), service.get("name")
        rdtype = service.get("type", "CNAME")
        if not (isinstance(provider, str) and isinstance(name, str) and isinstance(rdtype, str)):
            continue
        record = (provider, name.strip().lower().rstrip(".") + ".", rdtype.upper())
        if record in owners:
            found.append(
                (
                    ("services", str(key), "name"),
                    f"{record[1]} {record[2]} through provider {provider!r} is already managed "
                    f"by service {owners[record]!r}: one service per record",
                )
            )
        owners.setdefault(record, str(key))
    return found


def check_secret_files(key: str, provider: ProviderSettings) -> tuple[list[Finding], list[Finding]]:
    """Every secret file the config names exists and is readable; under /run/credentials/ a
    missing one is only a warning: systemd provides it when the service starts."""
    files: list[tuple[Path_, Path]] = []
    here: Path_ = ("providers", key)
    if isinstance(provider, Rfc2136Settings) and provider.tsig is not None:
        for field in ("key_file", "secret_file"):
            path = getattr(provider.tsig, field)
            if path is not None:
                files.append(((*here, "tsig", field), path))
    if isinstance(provider, Route53Settings) and provider.credentials_file is not None:
        files.append(((*here, "credentials_file"), provider.credentials_file))
    return _check_files(files)


def check_coordination_files(coordination: Coordination) -> tuple[list[Finding], list[Finding]]:
    """The etcd client key and password file, like every other secret file; and a password
    only over TLS."""
    here: Path_ = ("coordination", "etcd")
    etcd = coordination.etcd
    files = [((*here, field), path) for field, path in
             (("key_file", etcd.key_file), ("password_file", etcd.password_file))
             if path is not None]  # fmt: skip
    errors, warnings = _check_files(files)
    if coordination.k * 2 <= len(coordination.sites):
        warnings.append((("coordination", "quorum"), (
            f"quorum {coordination.k} of {len(coordination.sites)} sites is not a majority: "
            "one group of sites' view may move the name while the others disagree "
            "(`quorum: majority` holds a split)")))  # fmt: skip
    return errors + _password_over_tls(coordination), warnings


def _password_over_tls(coordination: Coordination) -> list[Finding]:
    """etcd's Authenticate call carries the password as it is: over http:// anyone on the path
    reads it, and with it full control of the prefix."""
    etcd = coordination.etcd
    plain = [i for i, url in enumerate(etcd.endpoints) if url.startswith("http://")]
    if etcd.password_file is None or not plain:
        return []
    return [
        (
            ("coordination", "etcd", "password_file"),
            f"endpoints {plain} are http://, which would send the etcd password in clear: use "
            "https:// endpoints (with ca_bundle), or a client certificate (cert_file, key_file) "
            "instead of a password",
        )
    ]


def _check_files(files: list[tuple[Path_, Path]]) -> tuple[list[Finding], list[Finding]]:
    errors: list[Finding] = []
    warnings: list[Finding] = []
    for at, path in files:
        if str(path).startswith(CREDENTIALS_DIR) and not path.exists():
            warnings.append((at, f"{path} is not there now: systemd provides it at start "
                                 "(LoadCredential=); it is read then"))  # fmt: skip
        elif not path.is_file():
            errors.append((at, f"secret file {path} does not exist (or is not a file)"))
        elif not os.access(path, os.R_OK):
            errors.append((at, f"secret file {path} cannot be read by this user"))
    return errors, warnings


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
    for index, instance in enumerate(service.instances):
        at: Path_ = (*here, "instances", index)
        errors.extend(_record_problems(service, instance.target, instance.addresses, at))
        checks = [c for c in (instance.acme, instance.ocsp, instance.crl) if c is not None]
        if not checks:
            errors.append((at, "an instance needs at least one check: acme, ocsp or crl"))
        elif not any(c.required for c in checks):
            errors.append((at, "every check is `required: false`: one must decide health"))
    practice = service.practice
    names = [i.name for i in service.instances]
    if practice is not None and practice.to is not None and practice.to not in names:
        errors.append(
            ((*here, "practice", "to"), f"no instance {practice.to!r} ({', '.join(names)})")
        )
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
