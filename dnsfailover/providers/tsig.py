"""TSIG keys for RFC 2136 (RFC 8945): from `tsig-keygen` output, a secret file or the environment.

The algorithm is always explicit (hmac-sha256 by default in the config); nothing here falls
back to HMAC-MD5 the way some tools do. The secret stays inside a `Secret` until the keyring
is built. Imports config secrets and errors only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import dns.name
import dns.tsig

from dnsfailover.config.models import Tsig
from dnsfailover.config.secrets import Secret, read_secret_env, read_secret_file
from dnsfailover.config.tsigfile import parse_key_file
from dnsfailover.errors import ConfigError

ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: Secret

    def dnspython_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(
            dns.name.from_text(self.name), self.secret.reveal(), ALGORITHMS[self.algorithm]
        )

    def __repr__(self) -> str:
        return f"TsigKey({self.name}, {self.algorithm}, {self.secret!r})"


def load_tsig(settings: Tsig, where: str) -> TsigKey:
    """Build the key from the config; every failure is a ConfigError that names `where`."""
    if settings.key_file is not None:
        text = read_secret_file(settings.key_file, f"{where}.key_file").reveal()
        name, algorithm, secret = _parse_key_file(text, settings, where)
        secret_value = Secret(secret, f"file {settings.key_file}")
    else:
        if settings.secret_file is not None:
            secret_value = read_secret_file(settings.secret_file, f"{where}.secret_file")
        else:
            assert settings.secret_env is not None
            secret_value = read_secret_env(settings.secret_env, f"{where}.secret_env")
        assert settings.name is not None
        name, algorithm = settings.name, settings.algorithm
    _check_base64(secret_value, where)
    return TsigKey(name if name.endswith(".") else name + ".", algorithm, secret_value)


def _parse_key_file(text: str, settings: Tsig, where: str) -> tuple[str, str, str]:
    try:
        return parse_key_file(text, settings.name)
    except ValueError as e:
        raise ConfigError(
            f"{where}.key_file {settings.key_file}: {e} (tsig-keygen format)"
        ) from None


def _check_base64(secret: Secret, where: str) -> None:
    try:
        base64.b64decode(secret.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the TSIG secret ({secret.source}) is not base64") from None
