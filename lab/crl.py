"""CRLs made by `openssl ca -gencrl`, and a static web server on loopback that serves them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import requests

from lab.net import LOOPBACK, free_port
from lab.process import LabError, ManagedProcess

_CONFIG = """\
[ca]
default_ca = lab_ca
[lab_ca]
dir = {dir}
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_crl_days = {days}
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
{idp}
[idp_section]
fullname = URI:{url}
"""


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()}")


class OpensslCA:
    """A CA directory as `openssl ca` wants it: key, self-signed cert, index.txt, crlnumber."""

    def __init__(self, directory: Path, name: str = "lab CRL issuer") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.cert = directory / "ca.pem"
        self.key = directory / "ca.key"
        (directory / "index.txt").write_text("")
        (directory / "crlnumber").write_text("1000\n")
        _run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "30",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:true",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])  # fmt: skip

    def revoke(self, serial: int, when: dt.datetime | None = None) -> None:
        """Record `serial` as revoked in the CA database (what `openssl ca -revoke` writes)."""
        when = when or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=90)).strftime("%y%m%d%H%M%SZ")
        stamp = when.strftime("%y%m%d%H%M%SZ")
        with (self.directory / "index.txt").open("a") as index:
            index.write(f"R\t{expiry}\t{stamp},keyCompromise\t{serial:X}\tunknown\t/CN=x\n")

    def gencrl(self, out: Path, days: int = 7, idp_url: str | None = None) -> Path:
        """Write a DER CRL to `out`, valid for `days`, with an IssuingDistributionPoint if asked."""
        config = self.directory / "ca.cnf"
        idp = "issuingDistributionPoint = critical, @idp_section" if idp_url else ""
        config.write_text(
            _CONFIG.format(dir=self.directory, days=days, idp=idp, url=idp_url or "unused")
        )
        pem = out.with_suffix(".pem")
        _run(["openssl", "ca", "-gencrl", "-config", str(config), "-out", str(pem), "-batch"])
        _run(["openssl", "crl", "-in", str(pem), "-outform", "DER", "-out", str(out)])
        return out


class StaticServer(ManagedProcess):
    """Python's http.server, bound to 127.0.0.1, serving one folder."""

    def __init__(self, name: str, root: Path, log_dir: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        argv = [
            sys.executable, "-m", "http.server", str(self.port),
            "--bind", LOOPBACK, "--directory", str(root),
        ]  # fmt: skip
        super().__init__(name, argv, log_dir / f"{name}.log")

    def url(self, filename: str) -> str:
        return f"http://{LOOPBACK}:{self.port}/{filename}"

    def start(self) -> None:
        super().start()
        self.wait_until(lambda: requests.head(self.url(""), timeout=1).status_code < 500)
