"""Envelope encryption: a fresh AES-256-GCM data key (DEK) per record, wrapped by a versioned KEK."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.crypto.keyring import KeyProvider


class DecryptionError(Exception):
    """The ciphertext, its wrapped key or its binding (AAD) does not check out."""


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    wrapped_dek: bytes  # 12-byte nonce + AES-GCM(KEK, DEK)
    kek_version: int


def _wrap_aad(aad: bytes, version: int) -> bytes:
    return b"strongroom-dek|v%d|" % version + aad


class Envelope:
    """Seals and opens records; ``aad`` binds a ciphertext to its row (ids and exchange)."""

    def __init__(self, keys: KeyProvider) -> None:
        self.keys = keys

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Return ``plaintext`` encrypted under a new DEK wrapped by the current KEK."""
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        ciphertext = AESGCM(dek).encrypt(nonce, plaintext, aad)
        version = self.keys.current_version
        return Sealed(ciphertext, nonce, self._wrap(dek, aad, version), version)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        """Return the plaintext; raise DecryptionError if anything was altered or moved."""
        dek = self._unwrap(sealed.wrapped_dek, aad, sealed.kek_version)
        try:
            return AESGCM(dek).decrypt(sealed.nonce, sealed.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("ciphertext does not verify") from None

    def rewrap(self, sealed: Sealed, aad: bytes) -> Sealed:
        """Return ``sealed`` with its DEK re-wrapped by the current KEK; the ciphertext is untouched."""
        dek = self._unwrap(sealed.wrapped_dek, aad, sealed.kek_version)
        version = self.keys.current_version
        return Sealed(sealed.ciphertext, sealed.nonce, self._wrap(dek, aad, version), version)

    def _wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.keys.kek(version)).encrypt(nonce, dek, _wrap_aad(aad, version))

    def _unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        try:
            return AESGCM(self.keys.kek(version)).decrypt(wrapped[:12], wrapped[12:], _wrap_aad(aad, version))
        except InvalidTag:
            raise DecryptionError("data key does not verify") from None
