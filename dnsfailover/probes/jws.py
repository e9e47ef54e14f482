"""The smallest JWS (RFC 7515, flattened JSON) that ACME needs for a probe account (RFC 8555 §6.2).

ES256 for P-256 keys, RS256 for RSA keys; the protected header carries the public JWK, the
nonce and the URL. Imports nothing from the rest of the package.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def load_signing_key(pem: bytes) -> SigningKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise ValueError("the probe account key must be EC P-256 or RSA of 2048 bits or more")


def public_jwk(key: SigningKey) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(_int_bytes(numbers.x, 32)),
            "y": b64url(_int_bytes(numbers.y, 32)),
        }
    rsa_numbers = key.public_key().public_numbers()
    return {
        "e": b64url(_int_bytes(rsa_numbers.e)),
        "kty": "RSA",
        "n": b64url(_int_bytes(rsa_numbers.n)),
    }


def sign(key: SigningKey, url: str, nonce: str, payload: dict[str, Any]) -> bytes:
    """A flattened JWS with the JWK in the protected header (for newAccount)."""
    alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    protected = b64url(
        json.dumps(
            {"alg": alg, "jwk": public_jwk(key), "nonce": nonce, "url": url}, separators=(",", ":")
        ).encode()
    )
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{protected}.{body}".encode("ascii")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = _int_bytes(r, 32) + _int_bytes(s, 32)
    else:
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return json.dumps(
        {"protected": protected, "payload": body, "signature": b64url(signature)}
    ).encode()
