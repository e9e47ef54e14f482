"""Certificates and signatures for the revocation probes: loading, and checking a signature.

`cryptography` parses OCSP responses and CRLs but leaves verification to us.
Imports nothing from the rest of the package except errors.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from dnsfailover.errors import ProbeSetupError


def load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ProbeSetupError(f"{what} {path}: {e.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ProbeSetupError(f"{what} {path}: not a certificate ({e})") from None


def signature_valid(
    public_key: object,
    signature: bytes,
    data: bytes,
    algorithm: hashes.HashAlgorithm | None,
) -> bool:
    """True when `signature` over `data` verifies with `public_key`; never raises."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm is not None:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`cert` names `issuer` as its issuer and carries a signature by issuer's key."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
