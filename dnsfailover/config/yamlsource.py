"""YAML that remembers where every key came from.

`parse` returns plain Python data and a map from each key path to its line, so that errors
can say `config.yaml:14: services.acme.instances[1].target: ...`. Duplicate keys are errors
(PyYAML would silently keep the last). Imports nothing from the rest of the package.

Config input is bounded before anything is built from it, because aliases multiply: nine
nested aliases of nine items each (a 280-byte "billion laughs") expand to 387 million nodes,
and `a: &x [*x]` is a list that contains itself. So the text has a size limit (MAX_BYTES),
the nesting a depth limit (MAX_DEPTH, checked on the event stream before PyYAML's recursive
composer sees it, and again on the expanded tree), and the expansion a node budget
(MAX_NODES): each an error at the line where the limit was crossed. A key must be a scalar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024  # a config of a hundred services is under 100 KiB
MAX_DEPTH = 32  # the deepest key of a valid config is 7 levels down
MAX_NODES = 50_000  # values after expanding aliases; a large config has a few thousand


class _Refused(Exception):
    """The input crosses a limit; `line` is where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


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
        _check_size(text)
        _check_depth(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            source.data = {}
            return source
        source.data = _build(node, (), _Walk(source, yaml.SafeLoader("")), frozenset())
    except yaml.YAMLError as e:  # syntax, or a value no safe constructor takes (a bare `=`)
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(e, "problem", None) or str(e)
        source.problems.append(f"{filename}:{line}: not valid YAML: {problem}")
        source.data = None
    except _Refused as e:
        source.problems.append(f"{filename}:{e.line}: {e.message}")
        source.data = None
    return source


def _check_size(text: str) -> None:
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        line = text[:MAX_BYTES].count("\n") + 1
        raise _Refused(line, f"the config is over {MAX_BYTES // 1024} KiB: not a config file?")


def _check_depth(text: str) -> None:
    """Refuse deep nesting from the event stream, which PyYAML builds without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise _Refused(mark.line + 1 if mark is not None else 1, _too_deep())
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


MERGE = "tag:yaml.org,2002:merge"


@dataclass
class _Walk:
    """One expansion of the node graph: where it writes, and how much it has spent."""

    source: Source
    loader: yaml.SafeLoader
    nodes: int = 0


def _build(node: yaml.Node, path: Path_, walk: _Walk, ancestors: frozenset[int]) -> Any:
    line = node.start_mark.line + 1
    walk.nodes += 1
    if walk.nodes > MAX_NODES:  # named by its top-level key: every line inside is an anchor's
        at = path[:1]
        raise _Refused(
            walk.source.lines.get(at, line),
            f"{dotted(at)}: aliases expand to more than {MAX_NODES} values (an alias bomb?)",
        )
    if len(path) > MAX_DEPTH:
        raise _Refused(line, f"{dotted(path[:3])}…: aliases nest it {_too_deep()}")
    if id(node) in ancestors:
        raise _Refused(line, f"{dotted(path)}: an alias refers to a value that contains it")
    walk.source.lines.setdefault(path, line)
    inside = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, path, walk, inside)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), walk, inside) for i, item in enumerate(node.value)]
    return walk.loader.construct_object(node, deep=True)


def _mapping(
    node: yaml.MappingNode, path: Path_, walk: _Walk, inside: frozenset[int]
) -> dict[Any, Any]:
    """A mapping's own keys, and those it merges (`<<: *anchor` or `<<: [*a, *b]`) that it
    does not set itself, the first merged mapping first. Merged keys keep the lines where
    their anchor wrote them; the mapping's own keys, their own lines."""
    own = [(k, v) for k, v in node.value if k.tag != MERGE]
    merged: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag != MERGE:
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for other in sources:
            if not isinstance(other, yaml.MappingNode):
                line = other.start_mark.line + 1
                raise _Refused(line, f"{dotted(path)}: `<<` merges mappings only")
            for key, value in _build(other, path, walk, inside).items():
                merged.setdefault(key, value)
    result: dict[Any, Any] = {}
    for key_node, value_node in own:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(key_line, f"{dotted(path)}: a key is a list or a mapping: keys are "
                           "plain names")  # fmt: skip
        key = walk.loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int):
            key = str(key)
        child = (*path, key)
        if key in result:
            walk.source.problems.append(
                f"{walk.source.filename}:{key_line}: {dotted(child)}: duplicate key"
            )
            continue
        walk.source.lines[child] = key_line
        result[key] = _build(value_node, child, walk, inside)
    return {**merged, **result}
