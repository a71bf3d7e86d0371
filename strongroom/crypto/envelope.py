"""Envelope encryption: a fresh AES-256-GCM data key (DEK) per record, wrapped by a versioned KEK.

The key provider wraps and unwraps data keys (in-process for a key file, inside the HSM or KMS
otherwise). Unwrapped data keys may be kept in memory for a short time (a bounded TTL cache, never
written anywhere), so a hot path makes no HSM or KMS round trip per request.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

from cachetools import TTLCache
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.crypto.keyring import DecryptionError, KeyProvider

__all__ = ["DecryptionError", "DekCache", "Envelope", "Sealed"]


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    wrapped_dek: bytes  # what the provider returned (file/env/HSM: 12-byte nonce + AES-GCM(KEK, DEK))
    kek_version: int


class _ZeroingCache(TTLCache[bytes, bytearray]):
    """A TTL cache of data keys that overwrites each key's bytes when it is evicted or expires (the
    ``bytes`` copies a cipher object made cannot be reached from Python; this is what the language allows)."""

    def popitem(self) -> tuple[bytes, bytearray]:
        key, value = super().popitem()
        value[:] = bytes(len(value))
        return key, value

    def expire(self, time: float | None = None) -> list[tuple[bytes, bytearray]]:
        expired = super().expire(time)
        for _, value in expired:
            value[:] = bytes(len(value))
        return expired


class DekCache:
    """Unwrapped data keys by (version, wrapped key, AAD), bounded in count and age; size 0 turns it off."""

    def __init__(self, size: int = 0, ttl_seconds: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._cache: _ZeroingCache | None = _ZeroingCache(size, ttl_seconds) if size > 0 and ttl_seconds > 0 else None

    @staticmethod
    def _key(version: int, wrapped: bytes, aad: bytes) -> bytes:
        return hashlib.sha256(b"%d|%d|" % (version, len(wrapped)) + wrapped + aad).digest()

    def get(self, version: int, wrapped: bytes, aad: bytes) -> bytes | None:
        if self._cache is None:
            return None
        with self._lock:
            dek = self._cache.get(self._key(version, wrapped, aad))
            return bytes(dek) if dek is not None else None

    def put(self, version: int, wrapped: bytes, aad: bytes, dek: bytes) -> None:
        if self._cache is None:
            return
        with self._lock:
            self._cache[self._key(version, wrapped, aad)] = bytearray(dek)

    def clear(self) -> None:
        if self._cache is None:
            return
        with self._lock:
            while self._cache:
                self._cache.popitem()

    def __len__(self) -> int:
        if self._cache is None:
            return 0
        with self._lock:
            self._cache.expire()
            return len(self._cache)


class Envelope:
    """Seals and opens records; ``aad`` binds a ciphertext to its row (ids and exchange)."""

    def __init__(self, keys: KeyProvider, cache: DekCache | None = None) -> None:
        self.keys = keys
        self.cache = cache if cache is not None else DekCache()

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Return ``plaintext`` encrypted under a new DEK wrapped by the current KEK."""
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        ciphertext = AESGCM(dek).encrypt(nonce, plaintext, aad)
        version, wrapped = self.keys.wrap(dek, aad)
        self.cache.put(version, wrapped, aad, dek)
        return Sealed(ciphertext, nonce, wrapped, version)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        """Return the plaintext; raise DecryptionError if anything was altered or moved."""
        dek = self._unwrap(sealed, aad)
        try:
            return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("ciphertext does not verify") from None

    def rewrap(self, sealed: Sealed, aad: bytes) -> Sealed:
        """Return ``sealed`` with its DEK re-wrapped by the current KEK; the ciphertext is untouched."""
        dek = self._unwrap(sealed, aad)
        version, wrapped = self.keys.wrap(dek, aad)
        return Sealed(sealed.ciphertext, sealed.nonce, wrapped, version)

    def _unwrap(self, sealed: Sealed, aad: bytes) -> bytes:
        dek = self.cache.get(sealed.kek_version, sealed.wrapped_dek, aad)
        if dek is None:
            dek = self.keys.unwrap(sealed.kek_version, sealed.wrapped_dek, aad)
            self.cache.put(sealed.kek_version, sealed.wrapped_dek, aad, dek)
        return dek
