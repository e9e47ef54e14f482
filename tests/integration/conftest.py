"""Fixtures that start real servers from the lab. See LAB.md and lab/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from lab import Lab
from lab.net import network_is_isolated
from tests.prerequisites import missing

# binary → Debian package that ships it
BINARIES = {
    "pebble": "pebble",
    "named": "bind9",
    "tsig-keygen": "bind9",
    "named-checkzone": "bind9-utils",
    "nsupdate": "bind9-dnsutils",
    "knotd": "knot",
    "pdns_server": "pdns-server",
    "pdnsutil": "pdns-server",
    "openssl": "openssl",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "nft": "nftables",
    "nsenter": "util-linux",
    "ip": "iproute2",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"report_{call.when}", report)
    return report


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh lab per test; every server it started is stopped by its PID at the end."""
    missing = [f"{b} (apt-get install {p})" for b, p in BINARIES.items() if not shutil.which(b)]
    if missing:
        missing("missing lab binaries", ", ".join(missing))
    with Lab() as the_lab:
        yield the_lab
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            print(f"\nlab server logs:\n{the_lab.logs()}")


@pytest.fixture
def isolated_network() -> None:
    """`openssl ocsp` listens on every interface: run only inside `unshare -n` (make test)."""
    if not network_is_isolated():
        missing("not in an isolated network namespace", "run `make test` (it uses unshare -n)")
