"""Text from outside, made safe to store, log, publish or pass to a hook: printable and bounded.

A probe's reason can carry whatever a hostile or broken instance sent: an ACME problem type
with a NUL byte or terminal escapes, a CRL issuer name of 2.5 million characters. Such text
breaks what it reaches (`subprocess` refuses a NUL, etcd refuses a 1.5 MiB request, a terminal
obeys escapes). `clean` escapes every character that is not printable (`\\x00`, `\\x1b`,
`\\u202e`) and caps the result at `limit` characters, saying how long the original was.
`bounded` does the same through lists and mappings (a probe result's details).

The lowest layer: imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LIMIT = 300  # characters of one reason
ITEMS = 20  # entries kept of a list or mapping in details


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escaped_prefix(text: str, budget: int) -> tuple[str, bool]:
    """The longest escaped prefix of `text` within `budget` characters; True if it is all."""
    pieces: list[str] = []
    used = 0
    for char in text[: budget + 1]:  # never more of the original than could be kept
        piece = char if char.isprintable() else _escape(char)
        if used + len(piece) > budget:
            return "".join(pieces), False
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces), len(text) <= budget


def clean(text: str, limit: int = LIMIT) -> str:
    """`text` with every non-printable character escaped, at most `limit` characters long
    (for a limit of 60 or more): the rest is summarised as "… (2,500,000 characters,
    truncated)". Idempotent: clean(clean(t)) == clean(t)."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= limit and text.isprintable():
        return text
    escaped, complete = _escaped_prefix(text, limit)
    if complete:
        return escaped
    suffix = f"… ({len(text):,} characters, truncated)"
    head, _ = _escaped_prefix(text, max(0, limit - len(suffix)))
    return head + suffix


def bounded(value: Any, limit: int = LIMIT, items: int = ITEMS) -> Any:
    """A JSON-like value made safe: strings cleaned, lists and mappings of more than `items`
    entries cut to `items`, the last saying how many were left out (so it is idempotent);
    numbers, booleans and None as they are; anything else by its cleaned `str`."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, Mapping):
        entries = list(value.items())
        cut = len(entries) > items
        kept_entries = entries[: items - 1] if cut else entries
        kept = {clean(str(k), 80): bounded(v, limit, items) for k, v in kept_entries}
        if cut:
            kept["…"] = f"{len(entries) - len(kept_entries):,} more entries, left out"
        return kept
    if isinstance(value, list | tuple):
        cut = len(value) > items
        out = [bounded(v, limit, items) for v in (value[: items - 1] if cut else value)]
        if cut:
            out.append(f"… {len(value) - len(out):,} more, left out")
        return out if isinstance(value, list) else tuple(out)
    return clean(str(value), limit)
