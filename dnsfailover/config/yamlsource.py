"""YAML that remembers where every key came from.

`parse` returns plain Python data and a map from each key path to its line, so that errors
can say `config.yaml:14: services.acme.instances[1].target: ...`. Duplicate keys are errors
(PyYAML would silently keep the last). Imports nothing from the rest of the package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    filename: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line_of(self, path: Path_) -> int:
        """The line of the longest prefix of `path` that the file contains."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def where(self, path: Path_) -> str:
        return f"{self.filename}:{self.line_of(path)}"


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(text: str, filename: str) -> Source:
    source = Source(filename, None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            source.data = {}
            return source
        source.data = _build(node, (), source, yaml.SafeLoader(""))
    except yaml.YAMLError as e:  # syntax, or a value no safe constructor takes (a bare `=`)
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(e, "problem", None) or str(e)
        source.problems.append(f"{filename}:{line}: not valid YAML: {problem}")
        source.data = None
    return source


def _build(node: yaml.Node, path: Path_, source: Source, loader: yaml.SafeLoader) -> Any:
    source.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                key = str(key)
            child = (*path, key)
            if key in result:
                source.problems.append(
                    f"{source.filename}:{key_node.start_mark.line + 1}: {dotted(child)}: "
                    "duplicate key"
                )
                continue
            source.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, source, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), source, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
