"""`dnsfailover check` against two real Pebble CAs: all up, one killed, both killed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnsfailover.cli.main import main
from lab import Lab
from lab.pebble import Pebble


def write_config(tmp_path: Path, lab: Lab, pebbles: list[Pebble]) -> Path:
    (
        tmp_path / "example.test.zone"
    ).write_text(  # `check` never writes it; loading checks it parses
        "$ORIGIN example.test.\n@ 60 IN SOA ns h 1 2 3 4 5\n@ 60 IN NS ns\n"
    )
    instances = "".join(
        f"      - name: {p.name}\n"
        f"        target: {p.name}.example.test.\n"
        f"        acme: {{directory: '{p.directory_url}', ca_bundle: '{lab.tls.cert_path}'}}\n"
        for p in pebbles
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "providers:\n"
        "  files: {type: zonefile, path: example.test.zone, zone: example.test.}\n"
        "services:\n"
        "  acme:\n"
        "    provider: files\n"
        "    name: acme.example.test.\n"
        "    checks: {interval: 2s, timeout: 1s}\n"
        "    instances:\n" + instances
    )
    return config


def test_check_reports_each_instance_and_exits_by_service_health(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = lab.pebble("ca-a"), lab.pebble("ca-b")
    config = str(write_config(tmp_path, lab, [first, second]))

    assert main(["check", "-c", config]) == 0
    table = capsys.readouterr().out
    assert "acme: 2 of 2 instances up" in table
    assert table.count("healthy") == 2

    first.kill()
    assert main(["check", "-c", config]) == 0
    table = capsys.readouterr().out
    assert "acme: 1 of 2 instances up" in table
    line = next(row for row in table.splitlines() if row.strip().startswith("ca-a"))
    assert "unhealthy" in line and "cannot connect: Connection refused" in line

    second.kill()
    assert main(["check", "-c", config, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["services"]["acme"]["instances_up"] == []
    assert {r["outcome"] for r in report["services"]["acme"]["results"]} == {"unhealthy"}


def test_check_unknown_service_is_a_usage_error(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, lab, [lab.pebble("ca-a"), lab.pebble("ca-b")]))
    assert main(["check", "nope", "-c", config]) == 2
    assert "no service 'nope'" in capsys.readouterr().err
