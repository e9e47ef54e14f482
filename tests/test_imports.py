"""boto3 (about a third of start-up time) is imported only when a Route 53 provider is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BUILD = """
import sys
from pathlib import Path
from dnsfailover.cli.main import main  # everything the command line loads
from dnsfailover.controller.daemon import Daemon
Daemon(Path(sys.argv[1]))  # config, runtime, probes, providers, state, metrics
print(sorted(m for m in ("boto3", "botocore") if m in sys.modules))
"""


def _config(tmp_path: Path, provider: str) -> Path:
    zone = tmp_path / "example.test.zone"
    zone.write_text("$ORIGIN example.test.\n@ 60 IN SOA ns h 1 2 3 4 5\n@ 60 IN NS ns\n")
    providers = {
        "zonefile": f"{{type: zonefile, path: {zone}, zone: example.test.}}",
        "rfc2136": "{type: rfc2136, server: 127.0.0.1, zone: example.test.}",
        "route53": "{type: route53, hosted_zone_id: Z123, endpoint_url: 'http://127.0.0.1:9'}",
    }
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
state_dir: {tmp_path / "state"}
providers:
  dns: {providers[provider]}
services:
  acme:
    provider: dns
    name: acme.example.test.
    instances:
      - {{name: a, target: a.example.test., acme: {{directory: "https://127.0.0.1:9/dir"}}}}
      - {{name: b, target: b.example.test., acme: {{directory: "https://127.0.0.1:8/dir"}}}}
""")
    return config


@pytest.mark.parametrize(
    ("provider", "imported"),
    [("zonefile", "[]"), ("rfc2136", "[]"), ("route53", "['boto3', 'botocore']")],
)
def test_boto3_only_for_route53(tmp_path: Path, provider: str, imported: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(_config(tmp_path, provider))],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == imported
