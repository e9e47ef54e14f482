"""The value types the configuration's models are built from: the strict base model, and
checked strings and paths (a fully qualified name, a URL, HOST:PORT, an environment variable's
name, a path resolved against the config file's directory). A message never echoes a URL's
credentials or query (`shown_url`). Imports nothing above config.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the config file, not to the daemon's working directory."""
    base = (info.context or {}).get("base_dir")
    return value if value.is_absolute() or base is None else Path(base) / value


def _fqdn(value: str) -> str:
    name = value.strip().lower()
    if not name.endswith("."):
        raise ValueError(f"{value!r} is not fully qualified: write '{value}.'")
    labels = name[:-1].split(".")
    if name != "." and any(not label or len(label) > 63 for label in labels):
        raise ValueError(f"{value!r} is not a valid DNS name")
    return name


def shown_url(value: str) -> str:
    """`value` fit for an error message or a log: scheme, host, port and path, never the
    userinfo, query or fragment (where webhook and API tokens live)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(a URL that does not parse)"
    host = f"[{host}]" if ":" in host else host
    rest = "?…" if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{rest}"


def _url(value: str) -> str:
    """http:// or https://, with a host and a valid port. Errors never echo the URL: a webhook
    URL may carry its token in the userinfo, the query or the path."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("not an http:// or https:// URL")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("the URL contains a space or a control character")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL (brackets or port)") from None
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if port == 0:
        raise ValueError("the URL's port must be 1-65535")
    return value


def _https_url(value: str) -> str:
    _url(value)
    if not value.startswith("https://"):
        raise ValueError(
            f"{shown_url(value)!r}: ACME directories are served over https:// (RFC 8555 §6.1)"
        )
    return value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        shown = value if len(value) <= 64 and value.isprintable() else "the value"
        raise ValueError(f"{shown!r} is not HOST:PORT")
    return value


def _socket_path(value: Path) -> Path:
    if len(os.fsencode(value)) > 107:  # sun_path holds 108 bytes, the last a NUL
        raise ValueError("a Unix socket path is at most 107 bytes: choose a shorter one")
    return value


def _env_name(value: str) -> str:
    if not value.replace("_", "a").isalnum() or not value.isascii() or value[0].isdigit():
        raise ValueError("not an environment variable name (letters, digits, _)")
    if value.startswith("DNSFAILOVER_"):
        raise ValueError("DNSFAILOVER_* variables are the event's own: they are always passed")
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
SocketPath = Annotated[Path, AfterValidator(_resolve_path), AfterValidator(_socket_path)]
Fqdn = Annotated[str, AfterValidator(_fqdn)]
Url = Annotated[str, AfterValidator(_url)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
HostPort = Annotated[str, AfterValidator(_host_port)]
EnvName = Annotated[str, AfterValidator(_env_name)]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
