"""The documentation against the code: metrics, alerts, config keys, CLI commands and links.

Both ways: everything that exists is named in the docs, and everything of these kinds the docs
name exists. The docs are README.md, CONTRIBUTING.md and docs/*.md. Names are taken from the
code itself (the metrics registry, the alert rules file, the pydantic models, the argparse
parser), never from a list kept here.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from dnsfailover.cli.main import build_parser
from dnsfailover.config.models import Config
from dnsfailover.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MONITORING = DOCS / "monitoring.md"
CONFIGURATION = DOCS / "configuration.md"
# Linked before they land: each is written on another branch. Missing is allowed; once the
# file exists its links are checked like every other. Remove an entry once merged.
PENDING = {"docs/practice-runs.md"}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in doc_files())


# ----------------------------------------------------------------------------- metrics


def metric_names() -> dict[str, str]:
    """Every metric the daemon can expose, as an operator queries it → its type."""
    registry = Metrics().registry
    names = {}
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names[family.name + suffix] = family.type
    return names


def named_metrics(text: str) -> set[str]:
    """`dnsfailover_probes_total`, or a family: `dnsfailover_coordination_*`."""
    return set(re.findall(r"\bdnsfailover_[a-z][a-z0-9_]*\*?", text))


def test_every_metric_is_in_the_monitoring_table() -> None:
    table = set(re.findall(r"^\| `(dnsfailover_[a-z0-9_]+)` \|", MONITORING.read_text(), re.M))
    missing = sorted(set(metric_names()) - table)
    assert not missing, f"docs/monitoring.md's metrics table lacks {missing}"


def test_every_metric_the_docs_name_exists() -> None:
    known = metric_names()
    histograms = [n for n, kind in known.items() if kind == "histogram"]
    unknown = []
    for name in sorted(named_metrics(docs_text())):
        if name.endswith("_*"):  # a family: dnsfailover_coordination_*
            if not any(k.startswith(name[:-1]) for k in known):
                unknown.append(name)
            continue
        series = [f"{h}{s}" for h in histograms for s in ("_bucket", "_sum", "_count")]
        if name not in known and name not in series:
            unknown.append(name)
    assert not unknown, f"the docs name metrics that do not exist: {unknown}"


# ----------------------------------------------------------------------------- alerts


def alert_names() -> set[str]:
    rules = yaml.safe_load((ROOT / "configs" / "alerts.yaml").read_text())
    return {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_every_alert_is_in_the_monitoring_table() -> None:
    table = set(re.findall(r"^\| `(DnsFailover\w+)` \|", MONITORING.read_text(), re.M))
    missing = sorted(alert_names() - table)
    assert not missing, f"docs/monitoring.md's alerts table lacks {missing}"


def test_the_alert_count_the_docs_give_is_right() -> None:
    said = re.findall(r"has (\d+) rules", MONITORING.read_text())
    assert said == [str(len(alert_names()))], f"monitoring.md says {said} rules"


def test_every_alert_the_docs_name_exists() -> None:
    named = set(re.findall(r"\bDnsFailover[A-Z]\w*", docs_text()))
    unknown = sorted(named - alert_names())
    assert not unknown, f"the docs name alerts that do not exist: {unknown}"


# ----------------------------------------------------------------------------- config keys


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _type_of(model: type[BaseModel]) -> str | None:
    """A provider's `type` literal, for the models of a discriminated union."""
    field = model.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not typing.Literal:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if len(values) == 1 else None


def config_keys(
    model: type[BaseModel] = Config, prefix: str = "", kind: str | None = None
) -> set[tuple[str, str | None]]:
    """Every key of the config as (dotted path, provider type or None): `NAME` stands for a
    mapping's key, `[]` for a list's items. `defaults.X` is documented as `services.NAME.X`."""
    keys: set[tuple[str, str | None]] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add((path, kind))
        origin = typing.get_origin(field.annotation)
        if origin is types.UnionType or origin is typing.Union:
            inner = [a for a in typing.get_args(field.annotation) if a is not type(None)]
            origin = typing.get_origin(inner[0]) if len(inner) == 1 else None
        below = {tuple: "[]", dict: ".NAME"}.get(origin, "") if origin else ""
        members = list(_models(field.annotation))
        for sub in members:
            sub_kind = _type_of(sub) if len(members) > 1 else kind
            keys |= config_keys(sub, f"{path}{below}.", sub_kind)
    return keys


def documented_keys() -> set[tuple[str, str | None]]:
    """Each key table's rows, under the path its heading names: "## `providers.NAME` with
    `type: rfc2136`" + row "`tsig.name`" → ("providers.NAME.tsig.name", "rfc2136")."""
    found: set[tuple[str, str | None]] = set()
    prefix: str | None = None
    kind: str | None = None
    for line in CONFIGURATION.read_text().splitlines():
        heading = re.match(r"^#+ (.*)", line)
        if heading:
            codes = re.findall(r"`([^`]+)`", heading[1])
            paths = [c for c in codes if re.fullmatch(r"[a-z_][a-zA-Z_.\[\]]*", c)]
            kinds = [c.split(":", 1)[1].strip() for c in codes if c.startswith("type:")]
            prefix = paths[0] if paths else ("" if heading[1] == "Top level" else None)
            kind = kinds[0] if kinds else None
            if prefix:  # the heading names a block: `services.NAME.instances[]`
                found.add((re.sub(r"(\.NAME|\[\])$", "", prefix), None))
            continue
        row = re.match(r"^\| `([a-z_][a-z_.\[\]]*)` \|", line)
        if row and prefix is not None:
            found.add((f"{prefix}.{row[1]}" if prefix else row[1], kind))
    return found


def _normalise(keys: set[tuple[str, str | None]]) -> set[tuple[str, str | None]]:
    out = set()
    for path, kind in keys:
        if path.startswith("defaults."):
            path = "services.NAME." + path.removeprefix("defaults.")
        out.add((path, kind))
    return out


def test_every_config_key_is_in_the_reference() -> None:
    documented = documented_keys()
    paths = {p for p, _ in documented}
    missing = sorted(
        f"{p} (type: {k})" if k else p
        for p, k in _normalise(config_keys())
        if (p, k) not in documented and not (k is None and p in paths)
    )
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_every_key_the_reference_documents_exists() -> None:
    keys = _normalise(config_keys())
    paths = {p for p, _ in keys}
    unknown = sorted(
        f"{p} (type: {k})" if k else p
        for p, k in documented_keys()
        if (p, k) not in keys and not (k is None and p in paths)
    )
    assert not unknown, f"docs/configuration.md documents keys that do not exist: {unknown}"


def test_the_reference_is_read_as_tables() -> None:
    """A guard for the parser above: it finds the tables, not nothing."""
    assert len(documented_keys()) > 100


# ----------------------------------------------------------------------------- commands


def subcommands() -> set[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for action in actions for name in action.choices}


_VALUED = {"-c", "--config", "--log-format"}
_START = r"(?:^|&&|\|\||[;|(]|\$\(|\bsudo)\s*"


def _command_after(words: list[str]) -> str | None:
    """The subcommand in `dnsfailover [options] WORD ...`, or None."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _VALUED
        else:
            return word if re.fullmatch(r"[a-z][a-z-]*", word) else None
    return None


def named_commands(text: str) -> set[str]:
    """Every `dnsfailover WORD` at the start of a command: in inline code, or in a fenced
    block at the start of a line (or after &&, |, ;, $( or sudo). Prose ("dnsfailover keeps
    …") is not a command."""
    found: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            for match in re.finditer(_START + r"dnsfailover\s+(.*)", line):
                command = _command_after(match[1].split("#")[0].split())
                if command:
                    found.add(command)
        else:
            for code in re.findall(r"`(dnsfailover [^`]+)`", line):
                command = _command_after(code.split()[1:])
                if command:
                    found.add(command)
    return found


def test_every_command_is_named_in_the_docs() -> None:
    missing = sorted(subcommands() - named_commands(docs_text()))
    assert not missing, f"no `dnsfailover COMMAND` in the docs for {missing}"


def test_every_command_the_docs_name_exists() -> None:
    unknown = sorted(named_commands(docs_text()) - subcommands())
    assert not unknown, f"the docs name commands that do not exist: {unknown}"


@pytest.mark.parametrize(
    ("text", "commands"),
    [
        ("`dnsfailover -c x.yaml drain a --reason b`", {"drain"}),
        ("dnsfailover keeps an ACME CA reachable", set()),
        ("```sh\nsystemctl enable --now dnsfailover\nsudo dnsfailover status\n```", {"status"}),
        ("```\nx && dnsfailover validate  # dnsfailover bogus\n```", {"validate"}),
    ],
    ids=["inline_with_options", "prose_is_not_a_command", "fenced_after_sudo", "comment_ignored"],
)
def test_command_extraction(text: str, commands: set[str]) -> None:
    assert named_commands(text) == commands


# ----------------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def links() -> Iterator[tuple[Path, str]]:
    for doc in doc_files():
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            yield doc, target


def test_every_link_is_relative_and_resolves() -> None:
    broken = []
    for doc, target in links():
        if re.match(r"[a-z]+:", target):  # https://, mailto: — outside the repository
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
        if not path.exists():
            if relative not in PENDING:
                broken.append(f"{doc.name}: {target} (no such file)")
            continue
        if anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_docs_cite_nothing_outside_the_repository() -> None:
    outside = [
        f"{doc.name}: {target}"
        for doc, target in links()
        if not re.match(r"[a-z]+:", target)
        and not (doc.parent / target.partition("#")[0]).resolve().is_relative_to(ROOT)
    ]
    outside += [p.name for p in doc_files() if "../shared/" in p.read_text(encoding="utf-8")]
    assert not outside, f"references outside the repository: {outside}"


def test_contributing_lists_the_makefiles_debian_packages() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^APT_PACKAGES\s*:=((?:.*\\\n)*.*)$", makefile, re.M)
    assert match, "no APT_PACKAGES in the Makefile"
    packages = match[1].replace("\\\n", " ").split()
    listed = re.search(r"`APT_PACKAGES` \(`([^`]+)`\)", (ROOT / "CONTRIBUTING.md").read_text())
    assert listed, "CONTRIBUTING.md does not list APT_PACKAGES"
    assert listed[1].split() == packages


def test_the_readme_fits_its_job() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160
