"""No secret appears in anything dnsfailover prints or writes (issue 21).

The hostile cases that touch secrets — a TSIG secret from secret_env and from secret_file,
an etcd password file, a webhook URL carrying a token (in the query, the userinfo and the
path), AWS keys in the environment — go through `validate` (a good config and a bad one),
`check`, `status`, `run --once` with debug logging, and the state directory the daemon
leaves (health.json, audit.jsonl, state.json). Every byte is searched for every secret.
Nothing here reaches another host: every server address is a closed port on loopback.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.scenario import wait_for

TSIG_ENV = base64.b64encode(b"tsig-from-the-environment-0001").decode()
TSIG_FILE = base64.b64encode(b"tsig-from-a-secret-file-000002").decode()
ETCD_PASSWORD = "etcd-password-0003"
WEBHOOK_TOKEN = "webhook-token-0004"
WEBHOOK_USERINFO = "webhook-userinfo-0005"
AWS_KEY_ID = "AKIASECRETKEYID00006"
AWS_SECRET = "aws-secret-access-key-0007"
SECRETS = (TSIG_ENV, TSIG_FILE, ETCD_PASSWORD, WEBHOOK_TOKEN, WEBHOOK_USERINFO, AWS_KEY_ID,
           AWS_SECRET)  # fmt: skip

INSTANCES = """\
    instances:
      - {{name: {p}-a, target: a.example.test., acme: {{directory: "https://127.0.0.1:9/d"}}}}
      - {{name: {p}-b, target: b.example.test., acme: {{directory: "https://127.0.0.1:8/d"}}}}
"""


def write_config(tmp_path: Path, *, coordination: bool, broken: bool = False) -> Path:
    secret_file = tmp_path / "tsig.secret"
    secret_file.write_text(TSIG_FILE + "\n")
    password_file = tmp_path / "etcd.password"
    password_file.write_text(ETCD_PASSWORD + "\n")
    webhook = f"http://u:{WEBHOOK_USERINFO}@127.0.0.1:9/hook/{WEBHOOK_TOKEN}?token={WEBHOOK_TOKEN}"
    if broken:  # each one an error whose message might echo the value it refuses
        webhook = webhook.replace("127.0.0.1:9", "127.0.0.1:0")
    etcd = f"""\
coordination:
  site: east
  sites: [east, west]
  etcd:
    endpoints: ["{"http" if broken else "https"}://127.0.0.1:9"]
    username: dnsfailover
    password_file: {password_file}
"""
    services = "".join(
        f"  {p}:\n    provider: {p}\n    name: {p}.example.test.\n" + INSTANCES.format(p=p)
        for p in ("env", "file", "aws")
    )
    config = tmp_path / ("broken.yaml" if broken else "config.yaml")
    config.write_text(f"""\
state_dir: {tmp_path / "state"}
notify:
  webhook: {{url: "{webhook}", timeout: 1s, retries: 0}}
{etcd if coordination else ""}
providers:
  env: {{type: rfc2136, server: 127.0.0.1, port: 9, zone: example.test., timeout: 1s,
         tsig: {{name: ddns-key., secret_env: DNSF_TEST_TSIG}}}}
  file: {{type: rfc2136, server: 127.0.0.1, port: 9, zone: example.test., timeout: 1s,
          tsig: {{name: ddns-key., secret_file: {secret_file}{"x" if broken else ""}}}}}
  aws: {{type: route53, hosted_zone_id: Z123, endpoint_url: "http://127.0.0.1:9"}}
services:
{services}""")
    return config


ENV = {
    **os.environ,
    "DNSF_TEST_TSIG": TSIG_ENV,
    "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_MAX_ATTEMPTS": "1",
}


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "dnsfailover", "-c", str(config), *args, "-v"]  # debug logs


def dnsfailover(config: Path, *args: str) -> str:
    done = subprocess.run(command(config, *args), capture_output=True, text=True, timeout=120,
                          env=ENV, check=False)  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return f"$ dnsfailover {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"


def leaks(texts: dict[str, str]) -> list[str]:
    return [f"{secret} in {where}" for where, text in texts.items() for secret in SECRETS
            if secret in text]  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, coordination=False)


def test_validate_shows_no_secret(tmp_path: Path) -> None:
    good = dnsfailover(write_config(tmp_path, coordination=True), "validate")
    broken = dnsfailover(write_config(tmp_path, coordination=True, broken=True), "validate")
    assert "→ 0" in good.splitlines()[0], good
    assert "→ 2" in broken.splitlines()[0], broken
    assert not leaks({"validate": good, "validate (errors)": broken})


def daemon(config: Path) -> str:
    """The daemon with debug logs until it has written health.json and an audit entry, then
    a reload whose config is broken (its errors are where a validator might echo a value)."""
    state = config.parent / "state"
    (state / "health.json").unlink(missing_ok=True)
    audited = len((state / "audit.jsonl").read_text()) if (state / "audit.jsonl").exists() else 0
    process = subprocess.Popen(command(config, "--log-format", "json", "run"), env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        wait_for(lambda: (state / "health.json").exists() and (state / "audit.jsonl").exists(),
                 60, "health.json and the audit log")  # fmt: skip
        broken = write_config(config.parent, coordination=False, broken=True)
        config.write_text(broken.read_text())
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload_failed" in (state / "audit.jsonl").read_text()[audited:], 60,
                 "the failed reload in the audit log")  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=90)
    assert "Traceback" not in output, output
    return output


def test_check_run_status_and_the_state_directory_show_no_secret(config: Path) -> None:
    shown = {
        "check": dnsfailover(config, "check", "--json"),
        "run --once": dnsfailover(config, "--log-format", "json", "run", "--once"),
        "run": daemon(config),
        "status": dnsfailover(config, "status", "--json"),
        "status (text)": dnsfailover(config, "status"),
    }
    state = config.parent / "state"
    written = {p.name: p.read_text(errors="replace") for p in state.iterdir() if p.is_file()}
    assert {"health.json", "audit.jsonl"} <= set(written), sorted(written)
    assert "127.0.0.1:9" in shown["run"]  # the providers were tried, and their errors logged
    assert "reload_failed" in shown["run"]
    assert not leaks({**shown, **written})
