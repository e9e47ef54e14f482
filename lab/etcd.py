"""A 3-member etcd cluster (Debian `etcd-server`), started and stopped by the lab, no systemd.

Each member listens for clients on an address of its own (`hosts`, default all on 127.0.0.1),
so that a site can be cut off from one member with a packet filter. Peers talk on the same
addresses. `--pre-vote` keeps a member cut off from the others from raising the term and
disturbing the cluster when it comes back. A short heartbeat and election timeout make the
cluster notice a dead leader within ~1 s; etcd grants leases of at least ~2 s with them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import requests

from lab.net import LOOPBACK, free_port
from lab.process import LabError, ManagedProcess
from lab.tls import CertFiles, LabCA


class EtcdMember(ManagedProcess):
    def __init__(
        self, name: str, directory: Path, host: str, client: int, peer: int, tls: bool = False
    ) -> None:
        self.host, self.client_port, self.peer_port = host, client, peer
        self.scheme = "https" if tls else "http"
        self.ca: str | bool = True  # what `healthy()` verifies the server with
        self.data = directory / f"etcd-{name}"
        self.client_cert: tuple[str, str] | None = None
        super().__init__(f"etcd-{name}", [], directory / f"etcd-{name}.log")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def healthy(self) -> bool:
        try:
            answer = requests.get(f"{self.url}/health", timeout=0.5, verify=self.ca,
                                  cert=self.client_cert)  # fmt: skip
        except requests.RequestException:
            return False
        return answer.status_code == 200 and answer.json().get("health") == "true"


class EtcdCluster:
    name = "etcd"

    def __init__(
        self,
        directory: Path,
        hosts: tuple[str, ...] = (LOOPBACK,) * 3,
        tls: LabCA | None = None,
    ) -> None:
        """`tls`: clients must speak TLS and present a certificate from that CA (mTLS); the
        lab's client certificate is `client_cert` (peers stay plain on loopback)."""
        if shutil.which("etcd") is None:
            raise LabError("etcd is not installed (apt-get install etcd-server)")
        directory.mkdir(parents=True, exist_ok=True)
        self.members = [
            EtcdMember(f"e{i + 1}", directory, host, free_port(), free_port(), tls is not None)
            for i, host in enumerate(hosts)
        ]
        self.client_cert: CertFiles | None = None
        extra: list[str] = []
        if tls is not None:
            server = tls.issue("etcd", names=("localhost", *hosts), client=True)
            self.client_cert = tls.issue("etcd-client", names=("dnsfailover",), client=True)
            extra = ["--cert-file", str(server.cert), "--key-file", str(server.key),
                     "--trusted-ca-file", str(tls.cert_path), "--client-cert-auth"]  # fmt: skip
            for m in self.members:
                m.ca = str(tls.cert_path)
                m.client_cert = (str(self.client_cert.cert), str(self.client_cert.key))
        cluster = ",".join(f"{m.name[5:]}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.argv = [
                "etcd", "--name", m.name[5:], "--data-dir", str(m.data),
                "--listen-client-urls", m.url, "--advertise-client-urls", m.url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"lab-{directory.name}",
                "--heartbeat-interval", "100", "--election-timeout", "1000", "--pre-vote",
                "--logger", "zap", "--log-outputs", "stderr", *extra,
            ]  # fmt: skip

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self) -> None:
        for m in self.members:
            m.start()
        for m in self.members:
            m.wait_until(m.healthy, timeout=30)

    def member(self, name: str) -> EtcdMember:
        return next(m for m in self.members if m.name == f"etcd-{name}")

    def restart(self, member: EtcdMember, timeout: float = 30.0) -> None:
        """Start a stopped member again with its data (it rejoins the cluster)."""
        member.start()
        member.wait_until(member.healthy, timeout=timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.running() and m.healthy() for m in self.members):
                return
            time.sleep(0.1)
        raise LabError(f"etcd did not become healthy in {timeout}s")

    def stop(self) -> None:
        # SIGTERM of a member waits for its peers; SIGKILL is what a crash does anyway.
        for m in self.members:
            m.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"-- {m.name}\n{m.log_tail(lines // 3)}" for m in self.members)
