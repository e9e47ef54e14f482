"""The same failover through Route 53 (moto's server) and through a zone file."""

from __future__ import annotations

from pathlib import Path

import dns.serial
import dns.zone

from lab import Lab
from lab.bind import ZONE_TEXT
from lab.moto import FAKE_SECRET
from lab.scenario import NAME, wait_for, write_config, zone_points_at


def test_failover_through_route53_on_moto(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    moto = lab.moto()
    client, zone_id = moto.zone_with_cname("example.test.", NAME, "ca-a.example.test.")
    credentials = moto.write_credentials(tmp_path / "aws")
    provider = {
        "type": "route53",
        "zone": "example.test.",
        "endpoint_url": moto.endpoint_url,
        "credentials_file": str(credentials),
        "poll_interval": "100ms",
        "propagation_timeout": "5s",
    }
    config = write_config(tmp_path / "config.yaml", lab, None, [a, b], provider=provider)
    daemon = lab.daemon(config)

    def value() -> str:
        records = client.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=NAME, StartRecordType="CNAME", MaxItems="1"
        )
        return str(records["ResourceRecordSets"][0]["ResourceRecords"][0]["Value"])

    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    wait_for(lambda: value() == "ca-b.example.test.", 10, "the record on ca-b in Route 53")
    wait_for(lambda: any(e["event"] == "failover" for e in daemon.audit()), 5, "audit")
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert entry["propagation_complete"] is True and "ok (INSYNC" in entry["propagation"]
    assert FAKE_SECRET not in daemon.log_tail(500)


def test_failover_through_a_zone_file(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE_TEXT)
    reloaded = tmp_path / "reloads"
    provider = {
        "type": "zonefile",
        "path": str(zone),
        "zone": "example.test.",
        "check_command": ["named-checkzone", "example.test.", "{path}"],
        "reload_command": ["sh", "-c", f"echo reload >> {reloaded}"],
    }
    config = write_config(tmp_path / "config.yaml", lab, None, [a, b], provider=provider)
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    wait_for(
        lambda: "acme 60 IN CNAME ca-b" in zone.read_text().replace("\t", " "),
        10,
        "the zone file on ca-b",
    )
    # The reload runs after the file is replaced: wait for it, then for the audit entry.
    wait_for(lambda: reloaded.exists() and reloaded.read_text() == "reload\n", 10, "the reload")
    wait_for(lambda: any(e["event"] == "failover" for e in daemon.audit()), 10, "the audit")
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert entry["outcome"] == "applied" and entry["propagation_complete"] is True
    serial = dns.zone.from_file(str(zone), origin="example.test.").get_soa().serial
    assert dns.serial.Serial(serial) > dns.serial.Serial(2026010100)


def test_zone_file_change_is_done_only_when_the_server_serves_it(lab: Lab, tmp_path: Path) -> None:
    """Written is not served: the reload command fails, so BIND keeps the old answer and the
    change stays unconfirmed; the reload is retried, and once it works (and BIND serves the
    new serial and record) the change completes."""
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    zone = tmp_path / "example.test.zone"
    zone.write_text(ZONE_TEXT)
    server = lab.bind_serving(zone)
    works = tmp_path / "reload-works"
    provider = {
        "type": "zonefile",
        "path": str(zone),
        "zone": "example.test.",
        "reload_command": ["sh", "-c", f"test -e {works} && kill -HUP {server.pid}"],
        "verify_servers": [f"127.0.0.1:{server.port}"],
        "timeout": "1s",
        "propagation_timeout": "3s",
    }
    config = write_config(tmp_path / "config.yaml", lab, None, [a, b], provider=provider)
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    wait_for(lambda: zone_points_at(zone, "ca-b"), 10, "the zone file on ca-b")

    def writing() -> dict[str, object]:
        return daemon.health()["services"]["acme"].get("writing") or {}

    wait_for(lambda: writing().get("kind") == "unconfirmed", 10, "the change unconfirmed")
    assert "reload command" in str(writing()["propagation"])
    entry = next(e for e in daemon.audit() if e["event"] == "failover")
    assert entry["outcome"] == "applied_unconfirmed" and entry["propagation_complete"] is False
    assert server.rrset(NAME, "CNAME") == {"ca-a.example.test."}  # BIND: still the old answer
    works.touch()  # the reload works from now on: the retry completes the change
    wait_for(lambda: server.rrset(NAME, "CNAME") == {"ca-b.example.test."}, 30, "BIND on ca-b")
    wait_for(lambda: any(e["event"] == "confirmed" for e in daemon.audit()), 30, "confirmed")
    wait_for(lambda: not writing(), 10, "nothing left unconfirmed")
    confirmed = next(e for e in daemon.audit() if e["event"] == "confirmed")
    assert f"127.0.0.1:{server.port} ok" in confirmed["propagation"]
