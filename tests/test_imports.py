"""boto3 (about a third of start-up time) is imported only when a Route 53 provider is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.offline_config import offline_config

BUILD = """
import sys
from pathlib import Path
from dnsfailover.cli.main import main  # everything the command line loads
from dnsfailover.controller.daemon import Daemon
Daemon(Path(sys.argv[1]))  # config, runtime, probes, providers, state, metrics
print(sorted(m for m in ("boto3", "botocore") if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("provider", "imported"),
    [("zonefile", "[]"), ("rfc2136", "[]"), ("route53", "['boto3', 'botocore']")],
)
def test_boto3_only_for_route53(tmp_path: Path, provider: str, imported: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(offline_config(tmp_path, provider))],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == imported


def test_no_two_modules_of_the_package_import_each_other_in_a_circle() -> None:
    """Data flows one way: a circle of imports (documents ↔ reconcile was one) is a design
    that needs an arrow removed. grimp is the graph import-linter checks the layers on."""
    import grimp

    graph = grimp.build_graph("dnsfailover", include_external_packages=False)
    modules = sorted(graph.modules)
    circles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                circles.append((module, imported))
    assert circles == []
