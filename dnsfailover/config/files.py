"""Every file the config names, opened and parsed as its user will open it, by `validate`.

Issuer and certificate files (PEM or DER) parse as certificates, CA bundles hold at least one
PEM certificate, account and client keys are private keys, TSIG key files are in
`tsig-keygen` form with a base64 secret, zone files parse as their zone. Each problem is a
(key path, message) pair, so it carries the config's FILE:LINE. A file that does not exist or
cannot be read by this user is reported by `consistency.check_secret_files` for the secret
files and here for the others; under `/run/credentials/` a missing file is a warning (systemd
provides it at start). A file is parsed once however many keys name it.
Imports the config models, the TSIG key-file format, cryptography and dnspython.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.zone
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dnsfailover.config.models import (
    Config,
    Rfc2136Settings,
    ZoneFileSettings,
)
from dnsfailover.config.tsigfile import parse_key_file
from dnsfailover.config.yamlsource import Path_

Finding = tuple[Path_, str]
Check = Callable[[bytes], str | None]  # the file's bytes → what is wrong with them, or None

CREDENTIALS_DIR = "/run/credentials/"
MAX_FILE = 16 * 1024 * 1024  # a bundle or a zone file larger than this is not one


def _certificate(data: bytes) -> str | None:
    try:
        if b"-----BEGIN" in data:
            x509.load_pem_x509_certificate(data)
        else:
            x509.load_der_x509_certificate(data)
    except ValueError:
        return "is not a certificate (PEM or DER)"
    return None


def _bundle(data: bytes) -> str | None:
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        return "is not a bundle of PEM certificates"
    return None if found else "holds no PEM certificate"


def _private_key(data: bytes) -> str | None:
    try:
        serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return "is not a PEM private key without a passphrase"
    except Exception:  # an unsupported algorithm raises its own kind
        return "holds a key of an unsupported kind"
    return None


def _tsig_key_file(name: str | None) -> Check:
    def check(data: bytes) -> str | None:
        try:
            parsed = parse_key_file(data.decode(), name)
        except (UnicodeDecodeError, ValueError) as e:
            return f"is not a tsig-keygen key file: {e}"
        return _base64(parsed[2])

    return check


def _secret(data: bytes) -> str | None:
    text = data.decode(errors="replace").strip()
    return "is empty" if not text else _base64(text)


def _base64(text: str) -> str | None:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return "holds a secret that is not base64"
    return None


def _zone(origin: str) -> Check:
    def check(data: bytes) -> str | None:
        try:
            dns.zone.from_text(data.decode(), origin=origin, relativize=False,
                               allow_include=True)  # fmt: skip
        except UnicodeDecodeError:
            return "is not UTF-8 text"
        except (dns.exception.DNSException, OSError) as e:
            return f"does not parse as zone {origin}: {e}"
        return None

    return check


def referenced_files(config: Config) -> Iterator[tuple[Path_, Path, Check, bool]]:
    """(key path, file, its check, a secret whose existence consistency.py checks already)."""
    for key, provider in config.providers.items():
        here: Path_ = ("providers", key)
        if isinstance(provider, Rfc2136Settings) and provider.tsig is not None:
            tsig = provider.tsig
            if tsig.key_file is not None:
                yield (*here, "tsig", "key_file"), tsig.key_file, _tsig_key_file(tsig.name), True
            if tsig.secret_file is not None:
                yield (*here, "tsig", "secret_file"), tsig.secret_file, _secret, True
        if isinstance(provider, ZoneFileSettings):
            yield (*here, "path"), provider.path, _zone(provider.zone), False
    for key, service in config.services.items():
        for index, instance in enumerate(service.instances):
            at: Path_ = ("services", key, "instances", index)
            if instance.acme is not None:
                acme = instance.acme
                for name, path, check in (("ca_bundle", acme.ca_bundle, _bundle),
                                          ("account_key", acme.account_key, _private_key),
                                          ("renewal_info_cert", acme.renewal_info_cert,
                                           _certificate)):  # fmt: skip
                    if path is not None:
                        yield (*at, "acme", name), path, check, False
            if instance.ocsp is not None:
                yield (*at, "ocsp", "issuer"), instance.ocsp.issuer, _certificate, False
                if instance.ocsp.cert is not None:
                    yield (*at, "ocsp", "cert"), instance.ocsp.cert, _certificate, False
            if instance.crl is not None:
                yield (*at, "crl", "issuer"), instance.crl.issuer, _certificate, False
    webhook = config.notify.webhook if config.notify else None
    if webhook is not None and webhook.ca_bundle is not None:
        yield ("notify", "webhook", "ca_bundle"), webhook.ca_bundle, _bundle, False
    if config.coordination is not None:
        etcd = config.coordination.etcd
        here = ("coordination", "etcd")
        if etcd.ca_bundle is not None:
            yield (*here, "ca_bundle"), etcd.ca_bundle, _bundle, False
        if etcd.cert_file is not None:
            yield (*here, "cert_file"), etcd.cert_file, _certificate, False
        if etcd.key_file is not None:
            yield (*here, "key_file"), etcd.key_file, _private_key, True


def check_referenced_files(config: Config) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) for every file the config names."""
    errors: list[Finding] = []
    warnings: list[Finding] = []
    verdicts: dict[tuple[Path, Check], str | None] = {}
    for at, path, check, secret in referenced_files(config):
        if not path.exists() or not os.access(path, os.R_OK):
            if secret:
                continue  # consistency.check_secret_files says so
            if str(path).startswith(CREDENTIALS_DIR) and not path.exists():
                warnings.append((at, f"{path} is not there now: systemd provides it at start "
                                     "(LoadCredential=); it is read then"))  # fmt: skip
            elif not path.exists():
                errors.append((at, f"file {path} does not exist"))
            else:
                errors.append((at, f"file {path} cannot be read by this user"))
            continue
        if (path, check) not in verdicts:
            verdicts[(path, check)] = _verdict(path, check)
        problem = verdicts[(path, check)]
        if problem is not None:
            errors.append((at, f"{path} {problem}"))
    return errors, warnings


def _verdict(path: Path, check: Check) -> str | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE + 1)
    except IsADirectoryError:
        return "is a directory, not a file"
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    if len(data) > MAX_FILE:
        return f"is over {MAX_FILE // (1024 * 1024)} MiB"
    return check(data)


def check_coordination_timing(config: Config) -> list[Finding]:
    """The sizing rule (README, "Choosing lease_ttl"): the renew deadline is at least
    3 x (endpoints x timeout), so a leader survives one endpoint's failure in a renewal."""
    if config.coordination is None:
        return []
    etcd = config.coordination.etcd
    needed = 3 * len(etcd.endpoints) * etcd.timeout
    if etcd.deadline >= needed:
        return []
    key = "renew_deadline" if etcd.renew_deadline is not None else "lease_ttl"
    return [
        (
            ("coordination", "etcd", key),
            f"the renew deadline {etcd.deadline:g}s is under 3 x {len(etcd.endpoints)} endpoints "
            f"x timeout {etcd.timeout:g}s = {needed:g}s: one slow endpoint can cost the leader "
            f"its lease; raise lease_ttl to at least {needed * 1.5:g}s or lower timeout",
        )
    ]
