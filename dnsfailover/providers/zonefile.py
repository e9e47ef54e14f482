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
The text editing itself is zonetext.py's. Imports config values, errors, rrset, the atomic
writer and the providers' own modules; never health, policy or plan.
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
from dnsfailover.providers.zonetext import RecordLines, ZoneTextError, edit_zone_text, next_serial
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset, describe, same_values

log = logging.getLogger(__name__)


STILL_SECONDS = 2.0  # a zone file unchanged this long may be kept parsed between reads


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
        serial = int(receipt.change_id) if receipt.change_id else None
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
        detail = f"serial {receipt.change_id}" if ok else f"holds {describe(seen)}"
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
