"""`openssl ocsp` as a real OCSP responder for one issuer (RFC 6960).

OpenSSL 3.0's `-port` takes only a number and listens on every interface, so the responder is
started only inside a network namespace whose one interface is loopback (`make test` and
`make demo` run the lab under `unshare -n`); anywhere else it refuses to start.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.net import LOOPBACK, free_port, network_is_isolated
from lab.process import LabError, ManagedProcess
from lab.tls import write_key


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%y%m%d%H%M%SZ")


class OcspResponder(ManagedProcess):
    """Answers for the serials in its index.txt; signs as `signer` (the issuer or a delegate)."""

    def __init__(
        self,
        name: str,
        directory: Path,
        issuer_cert: Path,
        signer_cert: Path,
        signer_key: Path,
        next_update_minutes: int | None = 60,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer_cert = issuer_cert
        self.index = directory / "index.txt"
        self.index.write_text("")
        argv = [
            "openssl", "ocsp", "-index", str(self.index), "-port", str(self.port),
            "-rsigner", str(signer_cert), "-rkey", str(signer_key), "-CA", str(issuer_cert),
            "-ignore_err", "-timeout", "5",
        ]  # fmt: skip
        if next_update_minutes is not None:
            argv += ["-nmin", str(next_update_minutes)]
        super().__init__(name, argv, directory / "ocsp.log", cwd=directory)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def start(self) -> None:
        if not network_is_isolated():
            raise LabError(
                "openssl ocsp listens on every interface: run the lab inside its own network "
                "namespace (`make test` does: unshare -n)"
            )
        super().start()
        # Not a bare connect: openssl ocsp serves one connection at a time and an empty one
        # holds it until -timeout runs out.
        self.wait_until(lambda: "waiting for OCSP client" in self.log_since_start())

    def add(self, serial: int, revoked_at: dt.datetime | None = None) -> None:
        """List a serial as valid, or as revoked at `revoked_at` (reason keyCompromise)."""
        expiry = _stamp(dt.datetime.now(dt.UTC) + dt.timedelta(days=90))
        status, revocation = ("V", "") if revoked_at is None else ("R", _stamp(revoked_at))
        if revocation:
            revocation += ",keyCompromise"
        line = f"{status}\t{expiry}\t{revocation}\t{serial:X}\tunknown\t/CN=serial-{serial:x}\n"
        with self.index.open("a") as index:
            index.write(line)
        if self.running():
            # openssl ocsp 3.0 reads index.txt once, at start: restart it on the same port.
            self.stop()
            self.start()


def delegated_signer(
    issuer_cert: Path, issuer_key: Path, directory: Path, valid_days: float = 7
) -> tuple[Path, Path]:
    """A responder certificate with id-kp-OCSPSigning issued directly by the issuer."""
    issuer = x509.load_pem_x509_certificate(issuer_cert.read_bytes())
    signing_key = serialization.load_pem_private_key(issuer_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab OCSP responder")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = directory / "responder.pem", directory / "responder.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, key_path)
    return cert_path, key_path
