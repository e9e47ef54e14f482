"""A BIND-format zone file on disk, rewritten atomically, then loaded by the server that serves it.

Write: under an exclusive lock, read the file, check the compare-and-swap expectation against
it, replace the RRset in a copy, bump the SOA serial (the larger, in RFC 1982 arithmetic, of
YYYYMMDD00 and old + 1), write a temporary file in the same folder, fsync it, run the check
command on it, and `os.replace` it over the original. A failed check leaves the original byte
for byte. dnspython's writer drops comments and `$TTL` lines, so a written file is
reformatted; `render()` shows only the records that change.

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
import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataset
import dns.rdatatype
import dns.serial
import dns.transaction
import dns.zone

from dnsfailover.atomicfile import atomic_write
from dnsfailover.config.models import ZoneFileSettings as Settings
from dnsfailover.errors import ConflictError, ProviderError
from dnsfailover.providers.authority import Authorities, servers_from
from dnsfailover.providers.base import Propagation, Provider, Receipt, ServerView
from dnsfailover.rrset import FENCE_TTL, Change, Fence, RRset, describe, same_values

log = logging.getLogger(__name__)


STILL_SECONDS = 2.0  # a zone file unchanged this long may be kept parsed between reads


def next_serial(old: int, today: dt.date) -> int:
    """The larger, in RFC 1982 arithmetic, of today's YYYYMMDD00 and old + 1 (mod 2**32)."""
    dated = int(today.strftime("%Y%m%d")) * 100
    bumped = (old + 1) % 2**32
    return dated if dns.serial.Serial(dated) > dns.serial.Serial(bumped) else bumped


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
        path = path or self.path
        try:
            return dns.zone.from_file(str(path), origin=self.zone, relativize=False)
        except FileNotFoundError:
            raise ProviderError(f"zone file {path} does not exist") from None
        except OSError as e:
            raise ProviderError(f"zone file {path}: {e.strerror}") from None
        except dns.exception.DNSException as e:
            raise ProviderError(f"zone file {path} does not parse: {e}") from None

    @staticmethod
    def _rrset_in(zone: dns.zone.Zone, name: str, rdtype: str) -> RRset | None:
        rdataset = zone.get_rdataset(name, rdtype)
        if rdataset is None:
            return None
        return RRset.of(name, rdtype, rdataset.ttl, [rd.to_text() for rd in rdataset])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers, ours and other dnsfailover processes, on a lock file beside it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            handle = open(lock_path, "a")  # noqa: SIM115 - held for the block
        except OSError as e:
            raise ProviderError(f"cannot open lock file {lock_path}: {e.strerror}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    def _planned(
        self, zone: dns.zone.Zone, change: Change, fence: Fence | None = None
    ) -> tuple[dns.zone.Zone, int, int]:
        """Apply `change` (and the fence's move) to `zone` in memory; return it with the old
        and new SOA serials."""
        soa = zone.find_rdataset(self.zone, "SOA")
        old = int(soa[0].serial)
        new = next_serial(old, self._today())
        with zone.writer() as txn:
            rdataset = dns.rdataset.from_text(
                "IN", change.rdtype, change.after.ttl, *change.after.values
            )
            txn.replace(change.name, rdataset)
            if fence is not None:
                self._put_fence(txn, fence)
            txn.replace(self.zone, dns.rdataset.from_rdata(soa.ttl, soa[0].replace(serial=new)))
        return zone, old, new

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
            zone = self._load()
            if fence is not None:
                self._check_fence(zone, fence)
            current = self._rrset_in(zone, change.name, change.rdtype)
            if not same_values(current, change.before):
                raise ConflictError(
                    f"{self.path}: {change.name} {change.rdtype} is {describe(current)}, "
                    f"not {describe(change.before)} as read"
                )
            zone, _, serial = self._planned(zone, change, fence)
            self._replace(zone)
        return str(serial)

    def _move_fence(self, fence: Fence) -> None:
        with self._locked():
            zone = self._load()
            self._check_fence(zone, fence)
            soa = zone.find_rdataset(self.zone, "SOA")
            new = next_serial(int(soa[0].serial), self._today())
            with zone.writer() as txn:
                self._put_fence(txn, fence)
                txn.replace(self.zone, dns.rdataset.from_rdata(soa.ttl, soa[0].replace(serial=new)))
            self._replace(zone)

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

    @staticmethod
    def _put_fence(txn: dns.transaction.Transaction, fence: Fence) -> None:
        rdataset = dns.rdataset.from_text("IN", "TXT", FENCE_TTL, Fence.text(fence.after))
        txn.replace(fence.owner, rdataset)

    def _replace(self, zone: dns.zone.Zone) -> None:
        """Atomically, after the check command passed on the new file (else the old one stays
        byte for byte)."""
        text = zone.to_text(relativize=True, want_origin=True)

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
        """A unified diff of the records that change, and of the SOA line; nothing else."""
        zone = self._load()
        before_lines = self._lines(zone, change.name, change.rdtype)
        soa_before = self._lines(zone, self.zone, "SOA")
        zone, _, _ = self._planned(zone, change)
        after_lines = self._lines(zone, change.name, change.rdtype)
        soa_after = self._lines(zone, self.zone, "SOA")
        diff = difflib.unified_diff(
            soa_before + before_lines,
            soa_after + after_lines,
            fromfile=str(self.path),
            tofile=f"{self.path} (planned)",
            lineterm="",
        )
        return "\n".join(diff)

    @staticmethod
    def _lines(zone: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
        rdataset = zone.get_rdataset(name, rdtype)
        if rdataset is None:
            return []
        return sorted(f"{name} {rdataset.ttl} IN {rdtype} {rd.to_text()}" for rd in rdataset)
