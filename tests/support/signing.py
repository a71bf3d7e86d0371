"""Helpers that sign requests the way a client of Strongroom would (written from the spec, not
from the server's code).

Native signed requests carry ``SR-ACCESS-KEY`` (the key id), ``SR-ACCESS-TIMESTAMP`` (epoch ms)
and ``SR-ACCESS-SIGNATURE`` over ``timestamp + METHOD + path ["?" + query] + raw body``:

- hmac keys: lower-case hex HMAC-SHA256 under the shared secret;
- rsa keys: base64 RSA-PSS (SHA-256, MGF1-SHA256, salt 32) or base64 RSA PKCS#1 v1.5 (SHA-256);
- ed25519 keys: base64 Ed25519.

Kalshi requests carry ``KALSHI-ACCESS-KEY/TIMESTAMP/SIGNATURE`` over ``timestamp + METHOD + path``
(the query is not signed; no body): base64 RSA-PSS or Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


_last_ms = 0
_stamp_lock = threading.Lock()


def now_ms() -> str:
    """The current time in ms, never the same twice in this process: like a real client, the tests
    must not sign two requests alike (a repeated signature is refused as a replay)."""
    global _last_ms
    with _stamp_lock:
        _last_ms = max(int(time.time() * 1000), _last_ms + 1)
        return str(_last_ms)


def load_private_key(pem: str):
    """Load a PEM private key (PKCS#1 or PKCS#8, unencrypted)."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


def new_rsa(bits: int = 2048, exponent: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


def new_ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(private, *, pkcs1: bool = False) -> str:
    """The SPKI PEM (``BEGIN PUBLIC KEY``) of ``private``; ``pkcs1`` gives ``BEGIN RSA PUBLIC KEY``."""
    fmt = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
    return private.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode()


def _split(path: str) -> tuple[str, str]:
    parts = urlsplit(path)
    return parts.path, parts.query


def native_message(method: str, path: str, body: bytes | str = b"", timestamp: str | None = None) -> tuple[str, bytes]:
    """Return ``(timestamp, message)`` for a native signature; ``path`` may include ``?query``."""
    stamp = timestamp or now_ms()
    raw_path, query = _split(path)
    target = raw_path + ("?" + query if query else "")
    body_bytes = body.encode() if isinstance(body, str) else body
    return stamp, (stamp + method.upper() + target).encode() + body_bytes


def _native_headers(key_id: str, stamp: str, signature: str) -> dict[str, str]:
    return {"SR-ACCESS-KEY": key_id, "SR-ACCESS-TIMESTAMP": stamp, "SR-ACCESS-SIGNATURE": signature}


def sign_hmac(key_id: str, secret: str, method: str, path: str, body: bytes | str = b"",
              timestamp: str | None = None) -> dict[str, str]:
    stamp, message = native_message(method, path, body, timestamp)
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return _native_headers(key_id, stamp, signature)


def sign_rsa_pss(key_id: str, private, method: str, path: str, body: bytes | str = b"",
                 timestamp: str | None = None) -> dict[str, str]:
    stamp, message = native_message(method, path, body, timestamp)
    signature = base64.b64encode(private.sign(message, PSS, hashes.SHA256())).decode()
    return _native_headers(key_id, stamp, signature)


def sign_rsa_pkcs1(key_id: str, private, method: str, path: str, body: bytes | str = b"",
                   timestamp: str | None = None) -> dict[str, str]:
    stamp, message = native_message(method, path, body, timestamp)
    signature = base64.b64encode(private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return _native_headers(key_id, stamp, signature)


def sign_ed25519(key_id: str, private, method: str, path: str, body: bytes | str = b"",
                 timestamp: str | None = None) -> dict[str, str]:
    stamp, message = native_message(method, path, body, timestamp)
    signature = base64.b64encode(private.sign(message)).decode()
    return _native_headers(key_id, stamp, signature)


def sign_native(kind: str, key_id: str, key, method: str, path: str, body: bytes | str = b"",
                timestamp: str | None = None) -> dict[str, str]:
    """Sign with ``kind`` in hmac (``key`` = secret), rsa-pss, rsa-pkcs1v15, ed25519 (``key`` = private key)."""
    signer = {"hmac": sign_hmac, "rsa-pss": sign_rsa_pss, "rsa": sign_rsa_pss, "rsa-pkcs1v15": sign_rsa_pkcs1,
              "ed25519": sign_ed25519}[kind]
    return signer(key_id, key, method, path, body, timestamp)


def sign_kalshi(key_id: str, private, method: str, path: str, timestamp: str | None = None) -> dict[str, str]:
    """Kalshi headers: RSA-PSS for RSA keys, Ed25519 for Ed25519 keys, over ``timestamp + METHOD + path``."""
    stamp = timestamp or now_ms()
    raw_path, _ = _split(path)
    message = (stamp + method.upper() + raw_path).encode()
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.sign(message)
    else:
        raw = private.sign(message, PSS, hashes.SHA256())
    return {"KALSHI-ACCESS-KEY": key_id, "KALSHI-ACCESS-TIMESTAMP": stamp,
            "KALSHI-ACCESS-SIGNATURE": base64.b64encode(raw).decode()}
