"""What the on-call engineer sees: metrics, hooks, JSON logs — and never a secret."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from dnsfailover.cli.main import main
from lab import Lab
from lab.moto import FAKE_SECRET
from lab.net import free_port
from lab.scenario import NAME, wait_for, write_config


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_failover_moves_metrics_fires_hooks_and_audits(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    receiver = Receiver()
    hook_out = tmp_path / "hook.jsonl"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\n{{ cat; echo; }} >> {hook_out}\necho "$DNSFAILOVER_EVENT '
                    f'$DNSFAILOVER_SERVICE $DNSFAILOVER_TO" >> {tmp_path / "env.txt"}\n')  # fmt: skip
    hook.chmod(0o755)
    port = free_port()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          metrics_listen=f"127.0.0.1:{port}",
                          notify={"exec": {"argv": [str(hook)], "timeout": "5s"},
                                  "webhook": {"url": receiver.url, "timeout": "2s"}})  # fmt: skip
    daemon = lab.daemon(config, "--log-format", "json")
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    before = scrape(port)
    assert before[("dnsfailover_active_instance", (("instance", "ca-a"), ("service", "acme")))] == 1
    a.kill()
    wait_for(lambda: bind.secondary.rrset(NAME, "CNAME") == {"ca-b.example.test."}, 10, "move")
    wait_for(lambda: any(e["event"] == "failover" for e in receiver.bodies), 10, "the webhook")
    wait_for(lambda: hook_out.exists() and "failover" in hook_out.read_text(), 10, "exec hook")

    after = scrape(port)
    assert after[("dnsfailover_active_instance", (("instance", "ca-b"), ("service", "acme")))] == 1
    assert after[("dnsfailover_active_instance", (("instance", "ca-a"), ("service", "acme")))] == 0
    assert (
        after[("dnsfailover_failovers_total", (("reason", "failover"), ("service", "acme")))] == 1
    )
    assert after[("dnsfailover_dns_write_duration_seconds_count", (("service", "acme"),))] == 1
    assert (
        after[("dnsfailover_dns_propagation_duration_seconds_count", (("service", "acme"),))] == 1
    )
    state = (("instance", "ca-a"), ("service", "acme"), ("state", "unhealthy"))
    assert after[("dnsfailover_instance_state", state)] == 1
    assert after[("dnsfailover_last_cycle_timestamp_seconds", ())] > time.time() - 10
    failed_probes = (
        ("check", "acme"),
        ("instance", "ca-a"),
        ("outcome", "unhealthy"),
        ("service", "acme"),
    )
    assert after[("dnsfailover_probes_total", failed_probes)] >= 2  # fall = 2

    event = next(e for e in receiver.bodies if e["event"] == "failover")
    assert (event["service"], event["from"], event["to"]) == ("acme", "ca-a", "ca-b")
    assert "failover acme ca-b" in (tmp_path / "env.txt").read_text()
    assert any(e["event"] == "failover" and e["to"] == "ca-b" for e in daemon.audit())

    lines = [json.loads(line) for line in daemon.log_tail(400).splitlines() if line.startswith("{")]
    changed = [line for line in lines if line.get("event") == "health_changed"]
    assert any(line.get("instance") == "ca-a" and line.get("to") == "unhealthy" for line in changed)


def test_a_slow_failing_hook_never_delays_a_failover(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          notify={"exec": {"argv": ["sleep", "30"], "timeout": "20s"},
                                  "webhook": {"url": f"http://127.0.0.1:{free_port()}/x",
                                              "timeout": "1s", "retries": 5}})  # fmt: skip
    daemon = lab.daemon(config)
    wait_for(lambda: daemon.health()["services"]["acme"]["active"] == "ca-a", 10, "settled")
    a.kill()
    took = wait_for(lambda: bind.secondary.rrset(NAME, "CNAME") == {"ca-b.example.test."}, 10,
                    "move")  # fmt: skip
    assert took < 4
    b.kill()  # all down: another event queues behind the stuck hook; still no blocking
    wait_for(lambda: any(e["event"] == "all_down" for e in daemon.audit()), 10, "the alarm")


def test_no_secret_in_logs_status_metrics_audit_or_errors(
    lab: Lab, tmp_path: Path, monkeypatch: Any
) -> None:
    a, b = lab.pebble("ca-a"), lab.pebble("ca-b")
    bind = lab.bind()
    wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0="
    monkeypatch.setenv("LAB_TSIG_SECRET", wrong)
    moto = lab.moto()
    credentials = moto.write_credentials(tmp_path / "aws")
    port = free_port()
    config = write_config(tmp_path / "config.yaml", lab, bind, [a, b],
                          metrics_listen=f"127.0.0.1:{port}")  # fmt: skip
    import yaml

    document = yaml.safe_load(config.read_text())
    document["providers"]["bind"]["tsig"] = {"name": "ddns-key.", "secret_env": "LAB_TSIG_SECRET"}
    document["providers"]["aws"] = {"type": "route53", "zone": "example.test.",
                                    "endpoint_url": moto.endpoint_url,
                                    "credentials_file": str(credentials)}  # fmt: skip
    second = json.loads(json.dumps(document["services"]["acme"]))
    second.update(provider="aws", name="ocsp.example.test.")
    document["services"]["ocsp"] = second
    config.write_text(yaml.safe_dump(document))
    daemon = lab.daemon(config, env={"LAB_TSIG_SECRET": wrong})
    wait_for(lambda: daemon.health()["services"]["acme"]["instances"]["ca-b"]["state"]
             == "healthy", 10, "settled")  # fmt: skip
    a.kill()  # the write is signed with the wrong secret: BIND rejects it
    wait_for(lambda: any(e.get("error") and "TSIG" in e["error"] for e in daemon.audit()), 15,
             "the authentication error")  # fmt: skip

    status = subprocess.run([sys.executable, "-m", "dnsfailover", "status", "--json", "-c",
                             str(config)], capture_output=True, text=True, check=False,
                            env={"LAB_TSIG_SECRET": wrong, "PATH": "/usr/bin:/bin"})  # fmt: skip
    failover = subprocess.run([sys.executable, "-m", "dnsfailover", "failover", "acme", "--to",
                               "ca-b", "-c", str(config)], capture_output=True, text=True,
                              check=False, env={"LAB_TSIG_SECRET": wrong, "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert failover.returncode == 1 and "rejected TSIG key ddns-key." in failover.stderr
    assert main(["validate", "-c", str(config)]) == 0
    places = {
        "daemon log": daemon.log_path.read_text(),
        "status": status.stdout + status.stderr,
        "failover": failover.stdout + failover.stderr,
        "metrics": requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text,
        "audit": (daemon.state_dir / "audit.jsonl").read_text(),
        "health": (daemon.state_dir / "health.json").read_text(),
        "state": (daemon.state_dir / "state.json").read_text()
        if (daemon.state_dir / "state.json").exists() else "",
    }  # fmt: skip
    for secret in (wrong, bind.update_key.secret, FAKE_SECRET):
        for where, text in places.items():
            assert secret not in text, f"a secret leaked into {where}"
    assert "rejected TSIG key" in places["audit"]
