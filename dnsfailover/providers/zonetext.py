"""Editing a BIND-format zone file as text: only the managed RRsets' lines, the SOA serial.

`edit_zone_text(text, origin, records, serial)` replaces each given RRset's lines (written as
`owner TTL IN TYPE value`, the owner as it was written) where the first of them stood, puts a
new RRset after its name's other records (or near another name, or at the end), and rewrites
the SOA serial in place; everything else (`$TTL`, `$ORIGIN`, comments, order, spacing) stays
byte for byte, but for a replaced record's own trailing comment, which goes with it, and a
blank-owner record that continued a removed line, whose owner is written out so that it keeps
its name. It understands `$ORIGIN`, relative and absolute names, `@`, blank owners, TTL and
class in either order, quoted strings, comments, parentheses and line endings; `$INCLUDE` is
refused (ZoneTextError). The provider (zonefile.py) parses the result again and checks that
exactly the intended change happened. Pure text in, text out.
Imports dnspython's name, type and TTL helpers only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.serial
import dns.ttl

SOA = dns.rdatatype.SOA


def next_serial(old: int, today: dt.date) -> int:
    """The larger, in RFC 1982 arithmetic, of today's YYYYMMDD00 and old + 1 (mod 2**32)."""
    dated = int(today.strftime("%Y%m%d")) * 100
    bumped = (old + 1) % 2**32
    return dated if dns.serial.Serial(dated) > dns.serial.Serial(bumped) else bumped


# ---------------------------------------------------------------------- the file as text


class ZoneTextError(Exception):
    """The zone file's text cannot be edited safely (the message says where and why)."""


@dataclass(frozen=True)
class _Token:
    line: int  # index into the file's lines
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Entry:
    """One record or directive as written: its lines (a parenthesised record spans several)
    and its tokens (comments and parentheses aside); for a record, the owner it belongs to
    and its type."""

    first: int
    last: int
    tokens: tuple[_Token, ...]
    origin: dns.name.Name  # the $ORIGIN in effect
    owner: dns.name.Name | None = None  # None: a directive, or a blank owner after $GENERATE
    explicit: bool = True  # the owner is written on the line (not blank)
    rdtype: int | None = None  # None: a directive
    rdata: tuple[_Token, ...] = ()


def _lex(line: str, index: int, depth: int, tokens: list[_Token]) -> int:
    """Append `line`'s tokens as dnspython's tokenizer splits them; return the parenthesis
    depth after it (RFC 1035 §5.1: parentheses continue a record over lines)."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t\r\n":
            i += 1
        elif c == ";":
            break
        elif c in "()":
            depth += 1 if c == "(" else -1
            if depth < 0:
                raise ZoneTextError(f"line {index + 1}: ')' without '('")
            i += 1
        else:
            start = i
            if c == '"':
                i += 1
                while i < n and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
            else:
                while i < n and line[i] not in ' \t\r\n;()"':
                    i += 2 if line[i] == "\\" else 1
            i = min(i, n)
            tokens.append(_Token(index, start, i, line[start:i]))
    return depth


def _is_ttl_or_class(text: str) -> bool:
    for parse in (dns.ttl.from_text, dns.rdataclass.from_text):
        try:
            parse(text)
            return True
        except (dns.exception.DNSException, ValueError):
            pass
    return False


def _entries(lines: list[str], origin: dns.name.Name) -> list[_Entry]:
    """Every record and directive of the file, with the owner each record belongs to (`@`,
    relative and absolute names, a blank owner continuing the previous one, `$ORIGIN`)."""
    entries: list[_Entry] = []
    last: dns.name.Name | None = origin  # as dnspython's reader starts
    depth, start, tokens = 0, 0, list[_Token]()
    for index, line in enumerate(lines):
        if depth == 0:
            start, tokens = index, []
        depth = _lex(line, index, depth, tokens)
        if depth > 0 or not tokens:
            continue
        explicit = lines[start][:1] not in (" ", "\t")
        try:
            if explicit and tokens[0].text.startswith("$"):
                word = tokens[0].text.upper()
                if word == "$INCLUDE":
                    raise ZoneTextError(
                        f"line {start + 1}: $INCLUDE: the managed records could be in another "
                        "file; dnsfailover edits only a zone file without $INCLUDE"
                    )
                if word == "$ORIGIN" and len(tokens) > 1:
                    origin = dns.name.from_text(tokens[1].text, origin)
                if word == "$GENERATE":
                    last = None
                entries.append(_Entry(start, index, tuple(tokens), origin))
                continue
            if explicit:
                last = dns.name.from_text(tokens[0].text, origin)
            rest = tokens[1:] if explicit else tokens
            k = 0
            while k < min(2, len(rest) - 1) and _is_ttl_or_class(rest[k].text):
                k += 1
            rdtype = dns.rdatatype.from_text(rest[k].text)
        except (dns.exception.DNSException, ValueError, IndexError) as e:
            raise ZoneTextError(f"line {start + 1}: cannot read it ({e})") from None
        rdata = tuple(rest[k + 1 :])
        entries.append(_Entry(start, index, tuple(tokens), origin, last, explicit, rdtype, rdata))
    if depth:
        raise ZoneTextError(f"line {start + 1}: '(' without ')'")
    return entries


def _owner_text(name: dns.name.Name, origin: dns.name.Name) -> str:
    if name == origin:
        return "@"
    if name.is_subdomain(origin):
        return name.relativize(origin).to_text()
    return name.to_text()


@dataclass(frozen=True)
class RecordLines:
    """An RRset as lines to write: owner, type, TTL, values, and where a new one goes."""

    name: dns.name.Name
    rdtype: str
    ttl: int
    values: tuple[str, ...]
    near: dns.name.Name | None = None  # when new: after this name's records (else the end)

    def lines(self, owner: str, eol: str) -> list[str]:
        """One line per value after `owner` (a name, or the blank that continues it)."""
        sep = "" if owner[-1:] in (" ", "\t") else " "
        return [f"{owner}{sep}{self.ttl} IN {self.rdtype} {v}{eol}" for v in self.values]

    def rdataset(self) -> dns.rdataset.Rdataset:
        return dns.rdataset.from_text("IN", self.rdtype, self.ttl, *self.values)


def edit_zone_text(
    text: str, origin: dns.name.Name, records: list[RecordLines], serial: int
) -> str:
    """`text` with each of `records` replacing its RRset's lines (where the first of them
    was; when absent: after the last record of its own name or of `near`, else at the end)
    and the SOA serial set to `serial`; every other line as it was, but for blank owners
    that must be written out to keep their name."""
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    entries = _entries(lines, origin)
    _set_serial(lines, entries, origin, serial)
    places = _Places(entries, records)
    starts = {e.first: e for e in entries}
    out: list[str] = []
    last: dns.name.Name | None = origin  # the owner a blank owner continues, as written now
    for i, line in enumerate(lines):
        if i in places.at:
            record, old = places.at[i]
            if old.explicit:  # the owner as the operator wrote it
                owner = line[old.tokens[0].start : old.tokens[0].end]
            elif last == record.name:  # blank, as it was
                owner = line[: len(line) - len(line.lstrip(" \t"))]
            else:
                owner = _owner_text(record.name, old.origin)
            out += record.lines(owner, eol)
            last = record.name
        here = starts.get(i)
        if i not in places.drop:
            if here is not None and here.rdtype is not None:
                if not here.explicit and here.owner is not None and here.owner != last:
                    line = _owner_text(here.owner, here.origin) + line  # its line went
                last = here.owner
            elif here is not None and here.tokens[0].text.upper() == "$GENERATE":
                last = None
            out.append(line)
        for record, anchor in places.after.get(i, []):
            out = _terminated(out, eol) + record.lines(_owner_text(record.name, anchor.origin), eol)
            last = record.name
    final = entries[-1].origin if entries else origin
    for record in places.end:
        out = _terminated(out, eol) + record.lines(_owner_text(record.name, final), eol)
    return "".join(out)


class _Places:
    """Where each RRset's new lines go: in place of its first old entry (the others are
    dropped), after the last record of its name or of its `near` name, or at the end."""

    def __init__(self, entries: list[_Entry], records: list[RecordLines]) -> None:
        self.at: dict[int, tuple[RecordLines, _Entry]] = {}
        self.after: dict[int, list[tuple[RecordLines, _Entry]]] = {}
        self.drop: set[int] = set()
        self.end: list[RecordLines] = []
        for record in records:
            rdtype = dns.rdatatype.from_text(record.rdtype)
            old = [e for e in entries if e.owner == record.name and e.rdtype == rdtype]
            for entry in old:
                self.drop.update(range(entry.first, entry.last + 1))
            if old:
                self.at[old[0].first] = (record, old[0])
                continue
            near = [e for e in entries if e.rdtype is not None and e.owner == record.name]
            if not near and record.near is not None:
                near = [e for e in entries if e.rdtype is not None and e.owner == record.near]
            if near:
                self.after.setdefault(near[-1].last, []).append((record, near[-1]))
            else:
                self.end.append(record)


def _terminated(out: list[str], eol: str) -> list[str]:
    """`out`, its last line ended (a file need not end with a newline)."""
    if out and not out[-1].endswith("\n"):
        return [*out[:-1], out[-1] + eol]
    return out


def _set_serial(
    lines: list[str], entries: list[_Entry], origin: dns.name.Name, serial: int
) -> None:
    soas = [e for e in entries if e.owner == origin and e.rdtype == SOA]
    if len(soas) != 1 or len(soas[0].rdata) < 3:
        raise ZoneTextError(f"found {len(soas)} SOA records at {origin} in the text, not one")
    token = soas[0].rdata[2]  # MNAME RNAME SERIAL ... (RFC 1035 §3.3.13)
    if not token.text.isdigit():
        raise ZoneTextError(f"line {token.line + 1}: SOA serial {token.text!r} is not a number")
    line = lines[token.line]
    lines[token.line] = line[: token.start] + str(serial) + line[token.end :]
