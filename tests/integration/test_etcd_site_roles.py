"""docs/security.md's etcd roles, run as written against etcd 3.4: each site can do its whole
coordination round with its own user, and cannot write another site's report or heartbeat."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsfailover.config.models import EtcdSettings
from dnsfailover.coordination.etcd import Etcd, EtcdError
from lab.etcd import EtcdCluster
from lab.net import LOOPBACK
from tests.prerequisites import missing as prerequisite

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
P = "/dnsfailover/"


def _require() -> None:
    missing = [b for b in ("etcd", "etcdctl", "bash") if shutil.which(b) is None]
    if missing:
        prerequisite(f"missing {', '.join(missing)}", "apt-get install etcd-server etcd-client")


def _roles_block() -> str:
    """The shell block of docs/security.md that creates the per-site roles and users."""
    text = DOC.read_text()
    found = re.search(r"```sh\n(P=/dnsfailover/.*?)```", text, re.DOTALL)
    assert found, "docs/security.md has no etcd roles block"
    return found.group(1)


def etcdctl(url: str, cwd: Path, *args: str, stdin: str | None = None, user: str = "") -> str:
    env = {**os.environ, "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": url}
    argv = ["etcdctl", *([f"--user={user}"] if user else []), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    _require()
    cluster = EtcdCluster(tmp_path / "etcd", hosts=(LOOPBACK,))
    cluster.start()
    try:
        url = cluster.endpoints[0]
        for site in ("east", "west"):
            (tmp_path / f"etcd-{site}.password").write_text(f"{site}-password\n")
        script = _roles_block().replace("east west north", "east west")
        env = {**os.environ, "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": url}
        done = subprocess.run(["bash", "-euc", script], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        etcdctl(url, tmp_path, "user", "add", "root", "--interactive=false", stdin="rootpw\n")
        etcdctl(url, tmp_path, "role", "add", "root")
        etcdctl(url, tmp_path, "user", "grant-role", "root", "root")
        etcdctl(url, tmp_path, "auth", "enable")
        yield url, tmp_path
    finally:
        cluster.stop()


def client(url: str, directory: Path, site: str) -> Etcd:
    settings = EtcdSettings.model_validate({
        "endpoints": [url], "username": f"dnsfailover-{site}",
        "password_file": str(directory / f"etcd-{site}.password"), "lease_ttl": "5s",
    })  # fmt: skip
    return Etcd(settings)


def test_a_site_does_its_round_with_its_own_role(etcd: tuple[str, Path]) -> None:
    url, directory = etcd
    east = client(url, directory, "east")
    lease, _ = east.grant(5)
    east.put(f"{P}reports/east", '{"site": "east"}', lease)
    east.put(f"{P}beats/east", '{"site": "east"}', lease)
    created, holder = east.create_or_get(f"{P}leader", "east", lease)
    assert created or (holder is not None and holder.value == "east")
    assert [kv.key for kv in east.get_prefix(f"{P}reports/")] == [f"{P}reports/east"]
    east.update(f"{P}state", lambda text: '{"version": 1}')
    east.put(f"{P}results/r1", "{}")
    assert east.keepalive(lease) > 0
    east.revoke(lease)  # etcd checks write access to every key under the lease: all east's
    assert east.get(f"{P}leader") is None


@pytest.mark.parametrize("key", ["reports/west", "beats/west", "reports/north", "other"])
def test_a_site_cannot_write_another_sites_keys(etcd: tuple[str, Path], key: str) -> None:
    url, directory = etcd
    east = client(url, directory, "east")
    with pytest.raises(EtcdError, match="permission denied"):
        east.put(f"{P}{key}", '{"site": "west", "forged": true}')
    west = client(url, directory, "west")
    west.put(f"{P}reports/west", '{"site": "west"}')  # west may, for its own
