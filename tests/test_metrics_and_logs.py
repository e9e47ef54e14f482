"""Metric names the alert rules use exist; JSON logs carry the event's fields."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from dnsfailover import logs
from dnsfailover.metrics import Metrics
from tests.offline_config import offline_config

ALERTS = Path(__file__).resolve().parent.parent / "configs" / "alerts.yaml"


def _exposed_names() -> set[str]:
    metrics = Metrics()
    metrics.set_state("acme", "a", "healthy")
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names | {f"{n}_total" for n in names}


def test_every_metric_an_alert_uses_exists() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    exposed = _exposed_names()
    assert len(rules) >= 4
    for rule in rules:
        used = set(re.findall(r"dnsfailover_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exposed, f"{rule['alert']} uses {used - exposed}"


def test_metric_names_follow_conventions() -> None:
    for family in Metrics().registry.collect():
        assert family.name.startswith("dnsfailover_")
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds _total itself
        if "duration" in family.name or "runway" in family.name or "expiry" in family.name:
            assert family.name.endswith("_seconds"), family.name


def test_json_log_lines_lift_key_value_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup(logging.INFO, "json")
    logging.getLogger("t").info(
        "health_changed service=acme instance=ca-a from=healthy to=unhealthy "
        "reason=acme unhealthy: directory: cannot connect: Connection refused"
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "health_changed"
    assert (line["service"], line["instance"], line["to"]) == ("acme", "ca-a", "unhealthy")
    assert line["reason"] == "acme unhealthy: directory: cannot connect: Connection refused"
    logs.setup(logging.WARNING, "text")


def test_metrics_listen_on_a_port_in_use_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    """No traceback: the option, the address and the cause, and the exit code of a bad config."""
    import socket
    import subprocess
    import sys

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = offline_config(tmp_path, top=f"metrics_listen: 127.0.0.1:{port}")
    try:
        done = subprocess.run([sys.executable, "-m", "dnsfailover", "run", "-c", str(config)],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: metrics_listen 127.0.0.1:{port}: cannot listen there: Address already in use"
    ], done.stderr
    assert "Traceback" not in done.stderr
