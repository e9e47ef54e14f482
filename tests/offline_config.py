"""A small config whose targets are never reached, for tests that run the daemon without a lab."""

from __future__ import annotations

from pathlib import Path

PROVIDERS = {
    "zonefile": "{{type: zonefile, path: {zone}, zone: example.test.}}",
    "rfc2136": "{{type: rfc2136, server: 127.0.0.1, zone: example.test.}}",
    "route53": "{{type: route53, hosted_zone_id: Z123, endpoint_url: 'http://127.0.0.1:9'}}",
}


def offline_config(tmp_path: Path, provider: str = "zonefile", top: str = "") -> Path:
    """Two instances on ports nothing listens on; `top`: more top-level YAML lines."""
    zone = tmp_path / "example.test.zone"
    zone.write_text("$ORIGIN example.test.\n@ 60 IN SOA ns h 1 2 3 4 5\n@ 60 IN NS ns\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
state_dir: {tmp_path / "state"}
{top}
providers:
  dns: {PROVIDERS[provider].format(zone=zone)}
services:
  acme:
    provider: dns
    name: acme.example.test.
    instances:
      - {{name: a, target: a.example.test., acme: {{directory: "https://127.0.0.1:9/dir"}}}}
      - {{name: b, target: b.example.test., acme: {{directory: "https://127.0.0.1:8/dir"}}}}
""")
    return config
