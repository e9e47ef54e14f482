"""Load a config file: YAML → defaults merged into services → pydantic → consistency checks.

Every problem is collected before anything is raised, so the operator sees them all at once,
each as `FILE:LINE: key.path: message`. pydantic's input is never echoed back, and no
validator echoes a URL or anything that may hold a secret (a DNS name or an address may be
quoted), so an inline secret or a webhook token cannot leak through an error. The input is
bounded before it is parsed (see `yamlsource`). Imports only config modules and errors.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from dnsfailover.config.consistency import (
    check_coordination_files,
    check_distinct_records,
    check_provider_reference,
    check_raw_instances,
    check_secret_files,
    check_service,
)
from dnsfailover.config.files import check_coordination_timing, check_referenced_files
from dnsfailover.config.models import Config, Coordination, ProviderSettings, Service
from dnsfailover.config.yamlsource import MAX_BYTES, Path_, Source, dotted, parse
from dnsfailover.errors import ConfigError

_PROVIDER = TypeAdapter[ProviderSettings](ProviderSettings)

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "union_tag_not_found": "'type' is required: rfc2136, route53 or zonefile",
    "union_tag_invalid": "unknown type: use rfc2136, route53 or zonefile",
}


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path
    warnings: tuple[str, ...]


def load_config(path: Path | str, files: bool = True) -> LoadedConfig:
    """Read, validate and cross-check a config file; raise ConfigError listing every problem.
    `files=False`: the files it names are not opened (a CLI that only talks to the daemon
    needs none of them, and may not be allowed to read the secrets)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never more: the path may be a device or a huge file
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        line = raw[:MAX_BYTES].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the config is over {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the config is not UTF-8 text") from None
    return load_text(text, str(path), base_dir=path.resolve().parent, files=files)


def load_text(
    text: str, filename: str, base_dir: Path | None = None, files: bool = True
) -> LoadedConfig:
    source = parse(text, filename)
    if source.problems and source.data is None:
        raise ConfigError(source.problems)
    if not isinstance(source.data, dict):
        raise ConfigError(f"{filename}:1: the config must be a mapping of keys to values")
    data = _inherit_defaults(source)
    context = {"base_dir": base_dir}
    findings: list[tuple[Path_, str]] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as e:
        findings.extend(_findings(source, e))
    errors, warnings = _consistency(data, context, files)
    findings.extend(errors)
    if config is not None:
        warnings.extend(check_coordination_timing(config))
        if files:
            errors, noted = check_referenced_files(config)
            findings.extend(errors)
            warnings.extend(noted)
    if source.problems or findings or config is None:
        raise ConfigError(source.problems + _render(source, findings))
    return LoadedConfig(config, Path(filename), tuple(_render(source, warnings)))


def _inherit_defaults(source: Source) -> dict[str, Any]:
    """Copy `defaults` into every service that does not set the key itself.

    Inherited keys keep the line of the `defaults` block, so an error in an inherited value
    points at the line that set it.
    """
    data = copy.deepcopy(source.data)
    defaults, services = data.get("defaults"), data.get("services")
    if not isinstance(defaults, dict) or not isinstance(services, dict):
        return data  # type: ignore[no-any-return]
    for key, service in services.items():
        if not isinstance(service, dict):
            continue
        for name, value in defaults.items():
            here: Path_ = ("services", key, name)
            if name not in service:
                service[name] = copy.deepcopy(value)
                _copy_lines(source, ("defaults", name), here)
            elif (
                name in ("checks", "practice")
                and isinstance(value, dict)
                and isinstance(service[name], dict)
            ):
                for sub, subvalue in value.items():
                    if sub not in service[name] and not _window_set(service[name], sub):
                        service[name][sub] = subvalue
                        _copy_lines(source, ("defaults", name, sub), (*here, sub))
    return data  # type: ignore[no-any-return]


def _window_set(practice: dict[str, Any], key: str) -> bool:
    """A service that sets one kind of practice window inherits neither kind."""
    windows = ("allowed_windows", "blocked_windows")
    return key in windows and any(w in practice for w in windows)


def _copy_lines(source: Source, origin: Path_, target: Path_) -> None:
    for path, line in list(source.lines.items()):
        if path[: len(origin)] == origin:
            source.lines[target + path[len(origin) :]] = line


def _consistency(
    data: dict[str, Any], context: dict[str, Any], files: bool = True
) -> tuple[list[tuple[Path_, str]], list[tuple[Path_, str]]]:
    """Cross-check every service that is valid on its own, even if others are not."""
    raw_providers = data.get("providers")
    raw_services = data.get("services")
    if not isinstance(raw_providers, dict) or not isinstance(raw_services, dict):
        return [], []
    providers: dict[str, ProviderSettings] = {}
    for name, raw in raw_providers.items():
        with contextlib.suppress(ValidationError):  # reported by the whole-config validation
            providers[name] = _PROVIDER.validate_python(raw, context=context)
    errors: list[tuple[Path_, str]] = []
    warnings: list[tuple[Path_, str]] = []
    for name, provider in providers.items() if files else ():
        found, noted = check_secret_files(str(name), provider)
        errors.extend(found)
        warnings.extend(noted)
    raw_coordination = data.get("coordination")
    if isinstance(raw_coordination, dict) and files:
        with contextlib.suppress(ValidationError):  # reported by the whole-config validation
            coordination = Coordination.model_validate(raw_coordination, context=context)
            found, noted = check_coordination_files(coordination)
            errors.extend(found)
            warnings.extend(noted)
    errors.extend(check_distinct_records(raw_services))
    for key, raw in raw_services.items():
        errors.extend(check_provider_reference(str(key), raw, set(raw_providers)))
        errors.extend(check_raw_instances(str(key), raw))
        try:
            service = Service.model_validate(raw, context=context)
        except ValidationError:
            continue
        found, noted = check_service(str(key), service, providers)
        errors.extend(found)
        warnings.extend(noted)
    return errors, warnings


def _findings(source: Source, error: ValidationError) -> list[tuple[Path_, str]]:
    found = []
    for item in error.errors(include_input=False, include_url=False):
        message = _MESSAGES.get(item["type"], item["msg"]).removeprefix("Value error, ")
        path = _data_path(source, tuple(item["loc"]), keep_last=item["type"] == "missing")
        if item["type"].startswith("union_tag"):
            path = (*path, "type")
        found.append((path, message))
    return found


def _render(source: Source, findings: list[tuple[Path_, str]]) -> list[str]:
    """`FILE:LINE: key.path: message`, in file order; an inherited default is reported once."""
    seen: set[tuple[int, str]] = set()
    lines = []
    for path, message in sorted(findings, key=lambda f: source.line_of(f[0])):
        if (source.line_of(path), message) not in seen:
            seen.add((source.line_of(path), message))
            lines.append(f"{source.where(path)}: {dotted(path)}: {message}")
    return lines


def _data_path(source: Source, loc: tuple[Any, ...], keep_last: bool) -> Path_:
    """Drop pydantic's own loc parts (union tags, validator names) that are not in the file.

    A missing key is not in the file either, but it is the point of the message: keep it.
    """
    path: Path_ = ()
    for index, part in enumerate(loc):
        candidate = (*path, part)
        if candidate in source.lines or (keep_last and index == len(loc) - 1):
            path = candidate
    return path
