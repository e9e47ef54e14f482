"""The zone-file provider: compare-and-swap, SOA serials, atomic replace, the lock, the diff."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from dnsfailover.config.models import ZoneFileSettings as Settings
from dnsfailover.errors import ConflictError, ProviderError
from dnsfailover.providers.zonefile import ZoneFileProvider, next_serial
from dnsfailover.rrset import Change, RRset

SAMPLE = Path(__file__).resolve().parent.parent / "configs" / "zones" / "example.com.zone"
ACME = "acme.example.com."
TODAY = dt.date(2026, 11, 28)
EAST = RRset.of(ACME, "CNAME", 60, ["ca-east.example.com."])
WEST = RRset.of(ACME, "CNAME", 60, ["ca-west.example.com."])


def provider(tmp_path: Path, **overrides: object) -> ZoneFileProvider:
    zone = tmp_path / "example.com.zone"
    if not zone.exists():
        shutil.copy(SAMPLE, zone)
    settings = {"type": "zonefile", "path": str(zone), "zone": "example.com.", **overrides}
    return ZoneFileProvider("lab", Settings.model_validate(settings), today=lambda: TODAY)


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        pytest.param(2026112805, 2026112806, id="same_day_counts_up"),
        pytest.param(2026112705, 2026112800, id="next_day_starts_at_00"),
        pytest.param(2026112899, 2026112900, id="same_day_overflow_borrows_tomorrow"),
        pytest.param(2026123100, 2026123101, id="serial_ahead_of_today_counts_up"),
        pytest.param(1764300000, 2026112800, id="unix_time_serial_is_behind_today"),
        pytest.param(2**32 - 1, 2026112800, id="wrap_around_to_today"),
        pytest.param(3900000000, 3900000001, id="serial_ahead_in_rfc1982_counts_up_not_back"),
        pytest.param(0, 2026112800, id="zero"),
    ],
)
def test_next_serial(old: int, expected: int) -> None:
    assert next_serial(old, TODAY) == expected


def test_read_and_compare_and_swap(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    assert dns.read(ACME, "CNAME") == EAST
    receipt = dns.apply(Change(EAST, WEST))
    assert receipt.token == "2026112800"
    assert dns.read(ACME, "CNAME") == WEST
    assert dns.wait(receipt, timeout=1).complete


def test_reads_see_every_edit_of_the_file(tmp_path: Path) -> None:
    """read() keeps the parsed zone while the file is unchanged; any edit is seen."""
    dns = provider(tmp_path)
    assert dns.read(ACME, "CNAME") == EAST
    text = dns.path.read_text()
    dns.path.write_text(text.replace("ca-east", "ca-west"))  # in place: same inode and size
    assert dns.read(ACME, "CNAME") == WEST
    replacement = dns.path.with_name("new.zone")
    replacement.write_text(text)  # an editor that renames a new file into place
    replacement.replace(dns.path)
    assert dns.read(ACME, "CNAME") == EAST
    dns.path.unlink()
    with pytest.raises(ProviderError, match="does not exist"):
        dns.read(ACME, "CNAME")


def test_a_still_zone_file_is_parsed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = provider(tmp_path)
    long_ago = time.time() - 60
    os.utime(dns.path, (long_ago, long_ago))
    loads: list[object] = []
    load = dns._load
    monkeypatch.setattr(dns, "_load", lambda path=None: loads.append(path) or load(path))
    for _ in range(3):
        assert dns.read(ACME, "CNAME") == EAST
    assert len(loads) == 1
    dns.path.write_text(dns.path.read_text().replace("ca-east", "ca-west"))
    os.utime(dns.path, (long_ago + 1, long_ago + 1))  # an old mtime, but not the same one
    assert dns.read(ACME, "CNAME") == WEST
    assert len(loads) == 2


def test_stale_read_is_a_conflict_and_the_file_is_untouched(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    original = dns.path.read_bytes()
    stale = RRset.of(ACME, "CNAME", 60, ["elsewhere.example.com."])
    with pytest.raises(ConflictError, match="is ca-east.example.com., not elsewhere"):
        dns.apply(Change(stale, WEST))
    with pytest.raises(ConflictError):
        dns.apply(Change(None, WEST))  # expected absent, but it exists
    assert dns.path.read_bytes() == original


def test_a_failing_check_leaves_the_original_byte_for_byte(tmp_path: Path) -> None:
    dns = provider(tmp_path, check_command=["sh", "-c", "echo bad zone >&2; exit 3"])
    original = dns.path.read_bytes()
    with pytest.raises(ProviderError, match="check command .* exited 3: bad zone"):
        dns.apply(Change(EAST, WEST))
    assert dns.path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "example.com.zone", "example.com.zone.lock"
    ]  # fmt: skip


def test_round_trip_through_named_checkzone(tmp_path: Path) -> None:
    if shutil.which("named-checkzone") is None:
        pytest.fail("named-checkzone is missing: apt-get install bind9-utils")
    dns = provider(tmp_path, check_command=["named-checkzone", "example.com.", "{path}"])
    dns.apply(Change(EAST, WEST))
    name = "ocsp.x1.example.com."
    before = dns.read(name, "A")
    dns.apply(Change(before, RRset.of(name, "A", 60, ["198.51.100.80"])))
    reread = provider(tmp_path)
    assert reread.read(ACME, "CNAME") == WEST
    assert reread.read(name, "A") == RRset.of(name, "A", 60, ["198.51.100.80"])
    assert reread.read("ca-east.example.com.", "A") == RRset.of(
        "ca-east.example.com.", "A", 3600, ["192.0.2.10"]
    )


def test_written_is_not_served_until_the_reload_succeeds(tmp_path: Path) -> None:
    """The reload belongs to wait(): a failed reload leaves the change unconfirmed, and each
    later wait() runs it again until it works; once it did, it is not run again."""
    marker, switch = tmp_path / "reloads", tmp_path / "reload-works"
    script = f"test -e {switch} && echo reload >> {marker}"
    dns = provider(tmp_path, reload_command=["sh", "-c", script])
    receipt = dns.apply(Change(EAST, WEST))
    assert dns.read(ACME, "CNAME") == WEST  # written
    first = dns.wait(receipt, timeout=1)
    assert not first.complete and "reload command" in first.summary()
    assert "retried later" in first.summary() and not marker.exists()
    assert not dns.wait(receipt, timeout=1).complete  # still failing: still not served
    switch.touch()
    assert dns.wait(receipt, timeout=1).complete
    assert dns.wait(receipt, timeout=1).complete
    assert marker.read_text() == "reload\n"  # ran once it worked, and not again


def test_concurrent_writers_are_serialised_by_the_lock(tmp_path: Path) -> None:
    """Two writers from the same read: the lock orders them, so exactly one wins."""
    slow_check = ["sh", "-c", "sleep 0.3"]
    writers = [provider(tmp_path, check_command=slow_check) for _ in range(2)]
    outcomes: list[str] = []

    def write(dns: ZoneFileProvider, target: RRset) -> None:
        try:
            dns.apply(Change(EAST, target))
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=write, args=(writers[0], WEST)),
        threading.Thread(
            target=write, args=(writers[1], RRset.of(ACME, "CNAME", 60, ["x.example.com."]))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "ok"]


def test_render_is_a_diff_of_the_record_and_the_soa_only(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    original = dns.path.read_bytes()
    text = dns.render(Change(EAST, WEST))
    path = dns.path
    assert text == "\n".join([
        "acme.example.com. CNAME: ca-east.example.com. -> ca-west.example.com.",
        f"--- {path}",
        f"+++ {path} (planned)",
        "@@ -1,2 +1,2 @@",
        "-example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 2026010100 3600 600 1209600 300",
        "-acme.example.com. 60 IN CNAME ca-east.example.com.",
        "+example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 2026112800 3600 600 1209600 300",
        "+acme.example.com. 60 IN CNAME ca-west.example.com.",
    ])  # fmt: skip
    assert dns.path.read_bytes() == original


def test_never_touches_the_apex_or_other_types(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    with pytest.raises(ProviderError, match="only manages CNAME, A and AAAA"):
        dns.read("example.com.", "NS")
    with pytest.raises(ProviderError, match="not a name below the zone"):
        dns.apply(Change(None, RRset.of("example.com.", "A", 60, ["192.0.2.1"])))
    with pytest.raises(ProviderError, match="not a name below the zone"):
        dns.read("acme.example.org.", "CNAME")


def test_missing_or_broken_zone_file_is_a_clear_error(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    dns.path.write_text("this is not a zone\n")
    with pytest.raises(ProviderError, match="does not parse"):
        dns.read(ACME, "CNAME")
    dns.path.unlink()
    with pytest.raises(ProviderError, match="does not exist"):
        dns.read(ACME, "CNAME")
