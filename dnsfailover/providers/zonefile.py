"""A BIND-format zone file on disk, edited as text and replaced atomically, then loaded by the
server that serves it.

Write: under an exclusive lock (`<file>.lock`: O_NOFOLLOW, mode 0600), parse the file with
dnspython and check the compare-and-swap expectation (and the fence) against it. Then edit the
text, not a parsed copy: the managed RRset's lines give way to the new ones (`owner TTL IN TYPE
value`, the owner as it was written) where the first of them stood; a new RRset goes after the
name's other records, else at the end; the fence TXT `_dnsfailover.<name>` likewise (a new one
after the managed name); the SOA serial is rewritten in place (the larger, in RFC 1982
arithmetic, of YYYYMMDD00 and old + 1). Everything else (`$TTL`, `$ORIGIN`, comments, order,
spacing) stays byte for byte, but for a replaced record's own trailing comment, which goes with
it, and a blank-owner record that continued a removed line, whose owner is written out so that
it keeps its name. The edited text is parsed again and must differ from the old zone in exactly
those RRsets and the serial, else nothing is written. Then a temporary file beside it, fsync,
the check command on it, `os.replace`: a refused or failed write leaves the file byte for
byte. A file with `$INCLUDE` can be read, never written (the records could be elsewhere).

A CNAME is never written at a name that holds other data (CAA, TXT, MX, ...), nor A/AAAA
beside a CNAME (RFC 1034 §3.6.2, RFC 2181 §10.1): the write is refused with the records named,
where rewriting the zone through dnspython used to delete them without a word.

Written is not served. The change is done (`wait`) only when the reload command succeeded and,
with `verify_servers`, every listed server answers with AA, the new SOA serial and the new
data. Until then `wait` reports it incomplete and the controller checks again later (with
backoff), running a reload that failed again: a recovered reload completes the change.
Imports config values, errors, rrset, the atomic writer and the providers' own modules; never
health, policy or plan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import errno
import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.serial
import dns.ttl
import dns.zone

from dnsfailover.atomicfile import atomic_write
from dnsfailover.config.models import ZoneFileSettings as Settings
from dnsfailover.errors import ConflictError, ProviderError, ProviderRefusedError
from dnsfailover.providers.authority import Authorities, servers_from
from dnsfailover.providers.base import Propagation, Provider, Receipt, ServerView
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset, describe, same_values

log = logging.getLogger(__name__)


STILL_SECONDS = 2.0  # a zone file unchanged this long may be kept parsed between reads
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


# ---------------------------------------------------------------------- the provider


Contents = dict[
    tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdatatype.RdataType],
    tuple[int, frozenset[dns.rdata.Rdata]],
]


def _contents(zone: dns.zone.Zone) -> Contents:
    """Every RRset of the zone: (owner, type, covered type) -> (TTL, data)."""
    return {
        (name, rds.rdtype, rds.covers): (rds.ttl, frozenset(rds))
        for name, rds in zone.iterate_rdatasets()
    }


def _records(rdataset: dns.rdataset.Rdataset) -> str:
    return "; ".join(f"{dns.rdatatype.to_text(rdataset.rdtype)} {rd.to_text()}" for rd in rdataset)


class ZoneFileProvider(Provider):
    kind = "zonefile"

    def __init__(
        self,
        name: str,
        settings: Settings,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
        **kwargs: object,
    ) -> None:
        super().__init__(name, settings.zone, **kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.path = Path(settings.path)
        self._today = today
        self._parsed: tuple[tuple[int, int, int], dns.zone.Zone] | None = None
        self._reloaded: int | None = None  # the newest serial a reload succeeded for
        self.authorities = Authorities(settings.timeout)
        self.propagation_timeout = settings.propagation_timeout
        self.write_timeout = settings.command_timeout * 2  # the check, then the reload

    # ------------------------------------------------------------------ file plumbing

    def _load(self, path: Path | None = None) -> dns.zone.Zone:
        return self._load_text(path)[1]

    def _load_text(self, path: Path | None = None) -> tuple[str, dns.zone.Zone]:
        """The file's text and the zone parsed from that same text."""
        path = path or self.path
        try:
            text = path.read_bytes().decode()
        except FileNotFoundError:
            raise ProviderError(f"zone file {path} does not exist") from None
        except OSError as e:
            raise ProviderError(f"zone file {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ProviderError(f"zone file {path} is not UTF-8 text: {e}") from None
        return text, self._parse(text, str(path))

    def _parse(self, text: str, where: str) -> dns.zone.Zone:
        try:
            return dns.zone.from_text(
                text, origin=self.zone, relativize=False, filename=where, allow_include=True
            )  # as from_file did; a write refuses $INCLUDE (ZoneTextError)
        except OSError as e:  # an $INCLUDE that cannot be read
            raise ProviderError(f"zone file {where}: {e}") from None
        except dns.exception.DNSException as e:
            raise ProviderError(f"zone file {where} does not parse: {e}") from None

    @staticmethod
    def _rrset_in(zone: dns.zone.Zone, name: str, rdtype: str) -> RRset | None:
        rdataset = zone.get_rdataset(name, rdtype)
        if rdataset is None:
            return None
        return RRset.of(name, rdtype, rdataset.ttl, [rd.to_text() for rd in rdataset])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers, ours and other dnsfailover processes, on a lock file beside it
        (never through a symbolic link; created readable by us only)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(lock_path, flags, 0o600)
        except OSError as e:
            why = "it is a symbolic link" if e.errno == errno.ELOOP else e.strerror
            raise ProviderError(f"cannot open lock file {lock_path}: {why}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _run(self, argv: tuple[str, ...], path: Path, what: str) -> None:
        command = [part.replace("{path}", str(path)) for part in argv]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.settings.command_timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ProviderError(f"{what} {command[0]} failed to run: {e}") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise ProviderError(
                f"{what} `{' '.join(command)}` exited {done.returncode}: {' | '.join(output)}"
            )

    # ------------------------------------------------------------------ the planned text

    def _edited(
        self, text: str, zone: dns.zone.Zone, change: Change | None, fence: Fence | None
    ) -> tuple[str, dns.zone.Zone, int]:
        """The file's text with `change`, the fence's move and the next serial; parsed again
        and checked to differ from `zone` in exactly those. Refused (ProviderError) else."""
        soa = zone.find_rdataset(self.zone, "SOA")
        serial = next_serial(int(soa[0].serial), self._today())
        records = []
        if change is not None:
            self._check_cname_rule(zone, change)
            a = change.after
            records.append(RecordLines(dns.name.from_text(a.name), a.rdtype, a.ttl, a.values))
        if fence is not None:
            owner, near = dns.name.from_text(fence.owner), dns.name.from_text(fence.name)
            fence_text = (Fence.text(fence.after),)
            records.append(RecordLines(owner, "TXT", FENCE_TTL, fence_text, near))
        apex = dns.name.from_text(self.zone)
        try:
            new_text = edit_zone_text(text, apex, records, serial)
        except ZoneTextError as e:
            raise ProviderError(f"zone file {self.path}: {e}; nothing written") from None
        new_zone = self._parse(new_text, f"{self.path} (as edited)")
        expected = _contents(zone)
        for record in records:
            rds = record.rdataset()
            expected[(record.name, rds.rdtype, rds.covers)] = (rds.ttl, frozenset(rds))
        new_soa = soa[0].replace(serial=serial)
        expected[(apex, soa.rdtype, soa.covers)] = (soa.ttl, frozenset([new_soa]))
        self._check_only(expected, _contents(new_zone))
        return new_text, new_zone, serial

    def _check_only(self, expected: Contents, found: Contents) -> None:
        """The edited zone holds exactly what was intended; else nothing is written."""
        keys = [k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k)]
        if not keys:
            return
        wrong = sorted(f"{name} {dns.rdatatype.to_text(rdtype)}" for name, rdtype, _ in keys)
        hint = ""
        if all(k in expected and k in found and expected[k][1] == found[k][1] for k in keys):
            hint = (
                " (without a $TTL line, a record without a TTL takes the last one stated, "
                "RFC 1035 §5.1: add a $TTL line)"
            )
        raise ProviderError(
            f"zone file {self.path}: editing its text would also change "
            f"{', '.join(wrong[:5])}{hint}; nothing written"
        )

    def _check_cname_rule(self, zone: dns.zone.Zone, change: Change) -> None:
        """No CNAME beside other data, no other data beside a CNAME (RFC 1034 §3.6.2, RFC 2181
        §10.1); a dnspython zone would drop the other records without a word."""
        node = zone.get_node(change.name)
        if node is None:
            return
        if change.rdtype == "CNAME":
            regular = dns.node.NodeKind.REGULAR
            other = [r for r in node if dns.node.NodeKind.classify_rdataset(r) == regular]
            if other:
                listed = "; ".join(_records(r) for r in other)[:300]
                raise ProviderRefusedError(
                    f"zone file {self.path}: {change.name} holds {listed}: a CNAME cannot share "
                    "its name with other data (RFC 1034 §3.6.2, RFC 2181 §10.1), and writing it "
                    "would delete them; move them to another name, or manage this name as A/AAAA"
                )
            return
        cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is not None:
            raise ProviderRefusedError(
                f"zone file {self.path}: {change.name} is a CNAME ({_records(cname)}): "
                f"{change.rdtype} records cannot sit beside it (RFC 1034 §3.6.2), and writing "
                "them would delete it; remove the CNAME first"
            )

    # ------------------------------------------------------------------ hooks

    def _read(self, name: str, rdtype: str) -> RRset | None:
        return self._rrset_in(self._current(), name, rdtype)

    def _current(self) -> dns.zone.Zone:
        """The zone as the file is now, parsed again only when the file changed (another inode,
        size or mtime; our own writes rename a new file into place). The daemon reads every
        service's record each cycle: with hundreds of services in one zone, parsing the whole
        file for each of them was most of its controller thread's time. Writes always parse
        the file afresh under the lock."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ProviderError(f"zone file {self.path} does not exist") from None
        except OSError as e:
            raise ProviderError(f"zone file {self.path}: {e.strerror}") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._parsed is not None and self._parsed[0] == key:
            return self._parsed[1]
        zone = self._load()
        # As git does with racily clean files: mtime ticks are coarse (a few ms), so an edit
        # right after the one we parsed could leave the key unchanged. Keep the parse only if
        # the file had been still for a while when we read it.
        if time.time() - st.st_mtime_ns / 1e9 > STILL_SECONDS:
            self._parsed = (key, zone)
        return zone

    def _write(self, change: Change, fence: Fence | None = None) -> str:
        with self._locked():
            text, zone = self._load_text()
            if fence is not None:
                self._check_fence(zone, fence)
            current = self._rrset_in(zone, change.name, change.rdtype)
            if not same_values(current, change.before):
                raise ConflictError(
                    f"{self.path}: {change.name} {change.rdtype} is {describe(current)}, "
                    f"not {describe(change.before)} as read"
                )
            new_text, _, serial = self._edited(text, zone, change, fence)
            self._replace(new_text)
        return str(serial)

    def _move_fence(self, fence: Fence) -> None:
        with self._locked():
            text, zone = self._load_text()
            self._check_fence(zone, fence)
            new_text, _, _ = self._edited(text, zone, None, fence)
            self._replace(new_text)

    def _check_fence(self, zone: dns.zone.Zone, fence: Fence) -> None:
        """Under the file lock: the fence holds what the writer read, else no write."""
        found = self._rrset_in(zone, fence.owner, "TXT")
        try:
            now = Fence.parse(fence.name, None if found is None else found.values)
        except ValueError as e:
            raise ProviderError(f"{self.path}: {e}") from None
        if now != fence.before:
            raise ConflictError(
                f"{self.path}: {fence.owner} holds epoch={now}, not epoch={fence.before} as read"
            )

    def _replace(self, text: str) -> None:
        """Atomically, after the check command passed on the new file (else the old one stays
        byte for byte)."""

        def check(temp: Path) -> None:
            if self.settings.check_command:
                self._run(self.settings.check_command, temp, "check command")

        atomic_write(self.path, text.encode(), mode=self.path.stat().st_mode & 0o777, check=check)

    def _wait(self, receipt: Receipt, timeout: float) -> Propagation:
        """Reload (again, if the last reload of this change failed), then every verify server;
        without either, the file holding the change is all there is to check."""
        start = time.monotonic()
        serial = int(receipt.token) if receipt.token else None
        if self.settings.reload_command and not self._reload_covers(serial):
            try:
                self._run(self.settings.reload_command, self.path, "reload command")
            except ProviderError as e:
                elapsed = time.monotonic() - start
                view = ServerView("reload", False, f"{e}; retried later", elapsed)
                return Propagation(False, elapsed, (view,))
            self._reloaded = serial
        if self.settings.verify_servers:
            servers = servers_from(self.settings.verify_servers)
            left = max(timeout - (time.monotonic() - start), 0.0)
            return self.authorities.wait(servers, self.zone, receipt.change, serial, left)
        seen = self._read(receipt.change.name, receipt.change.rdtype)
        ok = receipt.change.after.same_data(seen)
        detail = f"serial {receipt.token}" if ok else f"holds {describe(seen)}"
        elapsed = time.monotonic() - start
        return Propagation(ok, elapsed, (ServerView(str(self.path), ok, detail, elapsed),))

    def _reload_covers(self, serial: int | None) -> bool:
        if self._reloaded is None or serial is None:
            return False
        return bool(dns.serial.Serial(self._reloaded) >= dns.serial.Serial(serial))

    def _render(self, change: Change) -> str:
        """A unified diff of the records that change, and of the SOA, as the edited file would
        hold them (or why the write would be refused); nothing else."""
        text, zone = self._load_text()
        try:
            _, planned, _ = self._edited(text, zone, change, None)
        except ProviderError as e:
            return f"the write would be refused: {e}"
        before = self._lines(zone, self.zone, "SOA") + self._lines(zone, change.name, change.rdtype)
        after = self._lines(planned, self.zone, "SOA")
        after += self._lines(planned, change.name, change.rdtype)
        diff = difflib.unified_diff(
            before, after, fromfile=str(self.path), tofile=f"{self.path} (planned)", lineterm=""
        )
        return "\n".join(diff)

    @staticmethod
    def _lines(zone: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
        rdataset = zone.get_rdataset(name, rdtype)
        if rdataset is None:
            return []
        return sorted(f"{name} {rdataset.ttl} IN {rdtype} {rd.to_text()}" for rd in rdataset)
