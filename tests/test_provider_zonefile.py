"""The zone-file provider: compare-and-swap, SOA serials, atomic replace, the lock, the diff."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dnsfailover.config.models import ZoneFileSettings as Settings
from dnsfailover.errors import ConflictError, ProviderError, ProviderRefusedError
from dnsfailover.providers.zonefile import ZoneFileProvider, next_serial
from dnsfailover.rrset import Change, RRset
from tests.prerequisites import binary

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
    assert receipt.change_id == "2026112800"
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
    dns = provider(tmp_path, check_command=[named_checkzone(), "example.com.", "{path}"])
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


# ----------------------------------------------------------------------------- the file's shape

HAND = """\
; example.com, kept by hand in git. dnsfailover moves acme and ocsp.x1.
$ORIGIN example.com.
$TTL 1h

@       IN  SOA   ns1 hostmaster (
                  2026010100 ; serial
                  3h         ; refresh
                  15m        ; retry
                  2w         ; expire
                  5m )       ; negative caching
        IN  NS    ns1
        IN  CAA   0 issue "ca.example.com"

; --- the CA instances, west listed first on purpose
ca-west     IN A      198.51.100.10
ca-east\tIN\tA\t192.0.2.10   ; tabs here
ns1.example.com.   IN A 192.0.2.53

; the name clients use
acme    IN 60 cname   ca-east.example.com. ; active

$ORIGIN x1.example.com.
ocsp    60 IN A 192.0.2.80  ; responder a
www     IN A 192.0.2.99
ocsp    60 IN A 192.0.2.81
        IN TXT "ocsp x1"    ; continues ocsp: must stay at ocsp
"""
OCSP = "ocsp.x1.example.com."


def named_checkzone() -> str:
    """The binary's path; in CI (CI=true) its absence fails the test, locally it skips."""
    return binary("named-checkzone", "bind9-utils")


def hand_zone(tmp_path: Path, text: str = HAND, **overrides: object) -> ZoneFileProvider:
    (tmp_path / "example.com.zone").write_text(text)
    return provider(tmp_path, **overrides)


def changed(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines removed and the lines added, in order (every other line is common to both,
    in the same order)."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d[:2] == "- "], [d[2:] for d in diff if d[:2] == "+ "]


def test_a_failover_changes_only_the_records_the_serial_and_the_fence(tmp_path: Path) -> None:
    checkzone = named_checkzone()
    dns = hand_zone(tmp_path, check_command=[checkzone, "example.com.", "{path}"])
    assert dns.read(ACME, "CNAME") == EAST
    dns.apply(Change(EAST, WEST), fence=7)  # a coordinated write: the fence moves too
    first = dns.path.read_text()
    assert changed(HAND, first) == (
        ["                  2026010100 ; serial",
         "acme    IN 60 cname   ca-east.example.com. ; active"],
        ["                  2026112800 ; serial",
         "acme 60 IN CNAME ca-west.example.com.",
         '_dnsfailover.acme 60 IN TXT "epoch=7"'],
    )  # fmt: skip
    before = dns.read(OCSP, "A")
    dns.apply(Change(before, RRset.of(OCSP, "A", 60, ["198.51.100.80"])))  # one controller
    second = dns.path.read_text()
    assert changed(first, second) == (
        ["                  2026112800 ; serial",
         "ocsp    60 IN A 192.0.2.80  ; responder a",
         "ocsp    60 IN A 192.0.2.81",
         '        IN TXT "ocsp x1"    ; continues ocsp: must stay at ocsp'],
        ["                  2026112801 ; serial",
         "ocsp 60 IN A 198.51.100.80",
         'ocsp        IN TXT "ocsp x1"    ; continues ocsp: must stay at ocsp'],
    )  # fmt: skip
    done = subprocess.run(
        [checkzone, "example.com.", str(dns.path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reread = provider(tmp_path)
    assert reread.read(OCSP, "A") == RRset.of(OCSP, "A", 60, ["198.51.100.80"])
    assert reread.read_fence(ACME) == 7
    zone = reread._load()
    assert zone.get_rdataset("ocsp.x1.example.com.", "TXT") is not None
    assert zone.get_rdataset("ca-east.example.com.", "A").ttl == 3600  # $TTL 1h still applies


def test_a_new_leader_moves_only_the_fence_and_the_serial(tmp_path: Path) -> None:
    dns = hand_zone(tmp_path)
    dns.move_fence(ACME, 3)
    first = dns.path.read_text()
    serial = ["                  2026010100 ; serial", "                  2026112800 ; serial"]
    assert changed(HAND, first) == (
        serial[:1],
        [serial[1], '_dnsfailover.acme 60 IN TXT "epoch=3"'],
    )
    dns.move_fence(ACME, 4)
    assert changed(first, dns.path.read_text()) == (
        [serial[1], '_dnsfailover.acme 60 IN TXT "epoch=3"'],
        ["                  2026112801 ; serial", '_dnsfailover.acme 60 IN TXT "epoch=4"'],
    )


def test_a_blank_owner_record_can_be_the_one_replaced(tmp_path: Path) -> None:
    text = HAND.replace("www     IN A 192.0.2.99\nocsp    60 IN A 192.0.2.81\n", "")
    text = text.replace("ocsp    60 IN A 192.0.2.80  ; responder a\n", 'ocsp IN TXT "x"\n')
    text = text.replace('        IN TXT "ocsp x1"', "        60 IN A 192.0.2.80")
    dns = hand_zone(tmp_path, text)
    dns.apply(Change(dns.read(OCSP, "A"), RRset.of(OCSP, "A", 60, ["192.0.2.1", "192.0.2.2"])))
    removed, added = changed(text, dns.path.read_text())
    assert removed[1:] == ["        60 IN A 192.0.2.80    ; continues ocsp: must stay at ocsp"]
    assert added[1:] == ["        60 IN A 192.0.2.1", "        60 IN A 192.0.2.2"]


def test_a_new_record_is_appended_and_a_missing_newline_added(tmp_path: Path) -> None:
    dns = hand_zone(tmp_path, HAND.rstrip("\n"))
    name = "new.x1.example.com."
    dns.apply(Change(None, RRset.of(name, "AAAA", 30, ["2001:db8::1"])))
    assert dns.path.read_text().endswith("must stay at ocsp\nnew 30 IN AAAA 2001:db8::1\n")
    assert dns.read(name, "AAAA") == RRset.of(name, "AAAA", 30, ["2001:db8::1"])


@pytest.mark.parametrize(
    ("other", "named"),
    [
        pytest.param('acme 300 IN CAA 0 issue "ca.example.com"', 'CAA 0 issue "ca.example.com"',
                     id="caa_at_the_cname_name"),
        pytest.param('acme 300 IN TXT "v=spf1 -all"', 'TXT "v=spf1 -all"',
                     id="txt_at_the_cname_name"),
        pytest.param("acme 300 IN MX 10 mail", "MX 10 mail.example.com.",
                     id="mx_at_the_cname_name"),
    ],
)  # fmt: skip
def test_a_cname_is_never_written_over_other_data(tmp_path: Path, other: str, named: str) -> None:
    text = HAND.replace("acme    IN 60 cname   ca-east.example.com. ; active", other)
    dns = hand_zone(tmp_path, text)
    original = dns.path.read_bytes()
    with pytest.raises(ProviderRefusedError, match=f"holds {re.escape(named)}: a CNAME cannot"):
        dns.apply(Change(None, WEST))
    assert dns.path.read_bytes() == original
    assert "the write would be refused" in dns.render(Change(None, WEST))


def test_no_address_is_written_beside_a_cname(tmp_path: Path) -> None:
    dns = hand_zone(tmp_path)
    original = dns.path.read_bytes()
    with pytest.raises(ProviderRefusedError, match="is a CNAME .*: A records cannot sit beside"):
        dns.apply(Change(None, RRset.of(ACME, "A", 60, ["192.0.2.10"])))
    assert dns.path.read_bytes() == original


def test_an_edit_that_would_change_more_is_refused(tmp_path: Path) -> None:
    """Without $TTL, a record without a TTL takes the last one stated (RFC 1035 §5.1): a
    new TTL on the managed line would change the next record's too."""
    text = HAND.replace("$TTL 1h\n", "").replace("@       IN  SOA", "@  3600 IN  SOA")
    text = text.replace("; active\n", "; active\nafter IN A 192.0.2.7\n")
    dns = hand_zone(tmp_path, text)
    original = dns.path.read_bytes()
    with pytest.raises(
        ProviderError, match="would also change after.example.com. A .*add a \\$TTL"
    ):
        dns.apply(Change(EAST, RRset.of(ACME, "CNAME", 300, ["ca-west.example.com."])))
    assert dns.path.read_bytes() == original


def test_include_is_refused_for_writes(tmp_path: Path) -> None:
    (tmp_path / "more.zone").write_text("extra IN A 192.0.2.1\n")
    dns = hand_zone(tmp_path, HAND + f"$INCLUDE {tmp_path / 'more.zone'}\n")
    original = dns.path.read_bytes()
    assert dns.read(ACME, "CNAME") == EAST
    with pytest.raises(ProviderError, match=r"\$INCLUDE: the managed records could be"):
        dns.apply(Change(EAST, WEST))
    assert dns.path.read_bytes() == original


def test_the_lock_file_is_private_and_never_a_symlink(tmp_path: Path) -> None:
    dns = provider(tmp_path)
    dns.apply(Change(EAST, WEST))
    lock = tmp_path / "example.com.zone.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    lock.unlink()
    target = tmp_path / "elsewhere"
    lock.symlink_to(target)
    with pytest.raises(ProviderError, match="lock file .* it is a symbolic link"):
        dns.apply(Change(WEST, EAST))
    assert not target.exists()
