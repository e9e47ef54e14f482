"""The lab as one object: start what a test needs, and stop all of it, in reverse, at close."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar

from lab.bind import BindPair, NamedServer, file_server
from lab.crl import OpensslCA, StaticServer
from lab.etcd import EtcdCluster
from lab.hostile import HostileServer
from lab.moto import MotoServer
from lab.net import LOOPBACK
from lab.ocsp import OcspResponder, delegated_signer
from lab.pebble import PUBLIC_NAMES, Pebble
from lab.process import LabError
from lab.prometheus import Prometheus
from lab.proxy import FaultProxy
from lab.sites import Site, Sites
from lab.slowproxy import SlowProxy
from lab.tls import LabCA
from lab.unbound import Unbound

if TYPE_CHECKING:
    from lab.scenario import DaemonProcess

__all__ = ["Lab", "LabError"]


class Stoppable(Protocol):
    name: str

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 40) -> str: ...


S = TypeVar("S", bound=Stoppable)


class Lab:
    def __init__(self, directory: Path | None = None) -> None:
        self._owns_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="dnsfailover-lab-"))
        self.tls = LabCA(self.directory / "tls")
        self._started: list[Stoppable] = []
        self._count = 0

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _own(self, server: S) -> S:
        self._started.append(server)
        return server

    def _dir(self, stem: str) -> Path:
        self._count += 1
        return self.directory / f"{stem}-{self._count}"

    def pebble(
        self,
        name: str = "pebble",
        ocsp_url: str = "",
        public_names: tuple[str, ...] | None = None,
        address: str = "127.0.0.1",
        port: int | None = None,
    ) -> Pebble:
        """A Pebble whose certificate covers the lab's public names (or `public_names`); on
        another loopback `address`, several can share one `port`, as behind one public URL."""
        names = PUBLIC_NAMES if public_names is None else public_names
        directory = self._dir(name)
        server = self._own(Pebble(name, directory, self.tls, ocsp_url, names, address, port))
        server.start()
        return server

    def ocsp_for(
        self, pebble: Pebble, delegated: bool = False, next_update_minutes: int | None = 60
    ) -> OcspResponder:
        """An `openssl ocsp` responder for `pebble`'s intermediate (signing as it or a delegate)."""
        directory = self._dir(f"{pebble.name}-ocsp")
        issuer_cert, issuer_key = pebble.save_intermediate(directory)
        signer = (issuer_cert, issuer_key)
        if delegated:
            signer = delegated_signer(issuer_cert, issuer_key, directory)
        responder = self._own(
            OcspResponder(
                f"{pebble.name}-ocsp",
                directory,
                issuer_cert,
                *signer,
                next_update_minutes=next_update_minutes,
            )
        )
        responder.start()
        return responder

    def fault_proxy(self, pebble: Pebble) -> FaultProxy:
        """A fault-injecting HTTPS front for `pebble` (see lab/proxy.py for its modes)."""
        proxy = self._own(FaultProxy(pebble.base_url, self.tls))
        proxy.start()
        return proxy

    def bind(
        self, notify_delay: int = 0, hosts: dict[str, str] | None = None, address: str = LOOPBACK
    ) -> BindPair:
        pair = BindPair(self._dir("bind"), notify_delay, hosts, address)
        self._own(pair.primary)
        self._own(pair.secondary)
        pair.start()
        return pair

    def bind_serving(self, zone_file: Path) -> NamedServer:
        """A BIND that serves `zone_file` from disk; `reload()` (SIGHUP) loads it again."""
        server = self._own(file_server(self._dir("bind-file"), zone_file))
        server.start()
        return server

    def slow_proxy(self, upstream: str, slow_path: str, delay: float) -> SlowProxy:
        """An HTTP proxy to `upstream` that holds back requests whose path has `slow_path`."""
        proxy = self._own(SlowProxy(upstream, slow_path, delay))
        proxy.start()
        return proxy

    def prometheus(self, target: str, rule_files: list[Path]) -> Prometheus:
        """A real Prometheus scraping `target` (HOST:PORT) every second, with `rule_files`."""
        server = self._own(Prometheus(self._dir("prometheus"), target, rule_files))
        server.start()
        return server

    def unbound(self, bind: BindPair) -> Unbound:
        """The clients' recursive resolver on 127.0.0.1:53, a stub to `bind`'s primary."""
        server = self._own(Unbound(self._dir("unbound"), bind.primary.port))
        server.start()
        return server

    def sites(self) -> Sites:
        """A bridge for network-namespace sites (lab/sites.py), removed at close."""
        return self._own(Sites())

    def etcd(self, hosts: tuple[str, ...] = ("127.0.0.1",) * 3, tls: bool = False) -> EtcdCluster:
        """A 3-member etcd cluster, each member on one of `hosts`; `tls`: mTLS with the lab's
        CA (the client certificate is `cluster.client_cert`)."""
        cluster = self._own(EtcdCluster(self._dir("etcd"), hosts, self.tls if tls else None))
        cluster.start()
        return cluster

    def moto(self) -> MotoServer:
        server = self._own(MotoServer())
        server.start()
        return server

    def crl_ca(self, name: str = "crl-ca") -> OpensslCA:
        return OpensslCA(self._dir(name), name)

    def web(self, name: str = "web") -> StaticServer:
        server = self._own(StaticServer(name, self._dir(name), self.directory))
        server.start()
        return server

    def hostile(
        self,
        tls: bool = True,
        keep_alive: bool = False,
        address: tuple[str, int] = ("127.0.0.1", 0),
        **cert: object,
    ) -> HostileServer:
        """A misbehaving HTTPS server; `cert` goes to LabCA.issue (names, valid_days, ...)."""
        files = self.tls.issue(f"hostile-{self._count}", **cert) if tls else None  # type: ignore[arg-type]
        self._count += 1
        server = self._own(HostileServer(files, keep_alive=keep_alive, address=address))
        server.start()
        return server

    def daemon(
        self,
        config: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        site: Site | None = None,
        user: str | None = None,
    ) -> DaemonProcess:
        """`dnsfailover run` against `config` (inside `site`'s namespace when given; as `user`
        when given), stopped by its PID when the lab closes."""
        from lab.scenario import DaemonProcess

        process = self._own(DaemonProcess(config, *extra, env=env, site=site, user=user))
        process.start()
        return process

    def logs(self) -> str:
        """The tail of every server's log, for a failing test to print."""
        return "\n".join(f"----- {s.name}\n{s.log_tail()}" for s in self._started)

    def close(self) -> None:
        errors = []
        for server in reversed(self._started):
            try:
                server.stop()
            except Exception as e:
                errors.append(f"{server.name}: {e}")
        self._started.clear()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        if errors:
            raise LabError("; ".join(errors))
