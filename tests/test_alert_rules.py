"""The alert rules, tested offline by Prometheus's own `promtool` (one test file per alert).

`make lint` runs the same; here it is also checked that every alert has its own test file
with a case that fires (labels and annotations spelled out) and a case that stays quiet.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.prerequisites import binary

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ALERTS = CONFIGS / "alerts.yaml"
TESTS = CONFIGS / "alerts-tests"


def _promtool() -> str:
    return binary("promtool", "--no-install-recommends prometheus")


def _alerts() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    done = subprocess.run([_promtool(), "check", "rules", str(ALERTS)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("alert", _alerts())
def test_each_alert_fires_and_stays_quiet_as_its_unit_test_says(alert: str) -> None:
    path = TESTS / f"{alert}.yaml"
    assert path.exists(), f"{alert} has no unit test file {path.name}"
    cases = [
        check
        for test in yaml.safe_load(path.read_text())["tests"]
        for check in test["alert_rule_test"]
        if check["alertname"] == alert
    ]
    firing = [c for c in cases if c["exp_alerts"]]
    assert firing and all("exp_annotations" in a for c in firing for a in c["exp_alerts"])
    assert any(not c["exp_alerts"] for c in cases), f"{alert}: no case where it stays quiet"
    done = subprocess.run([_promtool(), "test", "rules", str(path)], capture_output=True,
                          text=True, check=False, cwd=TESTS)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_test_file_without_its_alert() -> None:
    assert {p.stem for p in TESTS.glob("*.yaml")} == set(_alerts())
