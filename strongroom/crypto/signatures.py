"""Public keys and request signatures (RSA-PSS, RSA PKCS#1 v1.5, Ed25519, HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
PKCS1 = padding.PKCS1v15()
SHA256 = hashes.SHA256()


class KeyFormatError(ValueError):
    """The public key is malformed, too weak or of an unsupported type (message says which)."""


PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def load_public_key(pem: str, expected: str | None = None) -> tuple[str, PublicKey, str]:
    """Parse a PEM public key (SPKI, or PKCS#1 for RSA).

    Returns ``(kind, key, spki_pem)`` with kind ``rsa`` or ``ed25519``.
    Raises KeyFormatError naming the problem: not PEM, RSA under 2048 bits or e != 65537,
    an unsupported algorithm, or a kind other than ``expected``.
    """
    if not isinstance(pem, str) or "-----BEGIN" not in pem or len(pem) > 16384:
        raise KeyFormatError("public_key must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
    data = pem.strip().encode()
    try:
        if b"BEGIN RSA PUBLIC KEY" in data:
            key = serialization.load_pem_public_key(data)
        elif b"PRIVATE KEY" in data:
            raise KeyFormatError("public_key holds a private key; send only the public key")
        else:
            key = serialization.load_pem_public_key(data)
    except KeyFormatError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("public_key is not a valid PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        if key.key_size < 2048:
            raise KeyFormatError(f"RSA key is too weak: {key.key_size} bits, at least 2048 required")
        if numbers.e != 65537:
            raise KeyFormatError("RSA public exponent must be 65537")
        kind = "rsa"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        kind = "ed25519"
    else:
        raise KeyFormatError("unsupported key type: only RSA (>= 2048 bits) and Ed25519 are accepted")
    if expected and expected != kind:
        raise KeyFormatError(f"public_key is {kind}, but kind {expected} was requested")
    spki = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return kind, key, spki


def generate_keypair(kind: str) -> tuple[str, str]:
    """Return ``(private_pem, public_spki_pem)``: RSA-2048 as PKCS#1, Ed25519 as PKCS#8."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        fmt = serialization.PrivateFormat.PKCS8
    else:
        raise KeyFormatError("key_type must be rsa or ed25519")
    private_pem = private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


@dataclass(frozen=True)
class Verifier:
    """A loaded public key that checks signatures over a message."""

    kind: str
    key: PublicKey

    def verify(self, signature: bytes, message: bytes, *, pss: bool = True, pkcs1: bool = False) -> bool:
        """Return True if ``signature`` is valid: Ed25519 for an Ed25519 key; for an RSA key RSA-PSS
        (if ``pss``) or RSA PKCS#1 v1.5 (if ``pkcs1``), both SHA-256."""
        key = self.key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):  # kind "ed25519"
                key.verify(signature, message)
                return True
            if pss:
                try:
                    key.verify(signature, message, PSS, SHA256)
                    return True
                except InvalidSignature:
                    pass
            if pkcs1:
                key.verify(signature, message, PKCS1, SHA256)
                return True
            return False
        except (InvalidSignature, ValueError, TypeError):
            return False


def verifier_from_pem(spki_pem: str) -> Verifier:
    """Return a Verifier for a stored (already validated) SPKI PEM.

    Raises KeyFormatError if it is neither RSA nor Ed25519 (never: :func:`load_public_key` checked it).
    """
    key = serialization.load_pem_public_key(spki_pem.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Verifier("ed25519", key)
    if isinstance(key, rsa.RSAPublicKey):
        return Verifier("rsa", key)
    raise KeyFormatError("the stored public key is neither RSA nor Ed25519")


def hmac_hex(secret: str, message: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``message`` under ``secret``."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
