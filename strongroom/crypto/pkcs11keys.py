"""Master keys in an HSM through PKCS#11 (``STRONGROOM_KEY_PROVIDER=pkcs11``; python-pkcs11, imported
only when this store is configured).

Each version is a non-extractable, sensitive AES-256 key labelled ``strongroom-kek-v<N>`` on the token;
a data key is wrapped inside the HSM with AES-GCM (CKM_AES_GCM): ``12-byte IV + ciphertext + tag``,
the record's AAD bound as GCM's associated data. The pepper is a non-extractable generic secret
labelled ``strongroom-pepper`` used with CKM_SHA256_HMAC. A retired version is relabelled
``strongroom-retired-kek-v<N>`` (destroy it with the token's tools once no backup needs it).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error, UserAlreadyLoggedIn
from pkcs11.mechanisms import GCMParams

from strongroom.crypto.keyring import DecryptionError, KeyringError, KeySourceUnavailable

LABEL = "strongroom-kek-v{}"
RETIRED = "strongroom-retired-kek-v{}"
PEPPER = "strongroom-pepper"
_VERSION = re.compile(r"^strongroom-kek-v([1-9][0-9]*)$")


class Pkcs11KeyStore:
    """Master key versions and the pepper on a PKCS#11 token (see the module's docstring)."""

    name = "pkcs11"

    def __init__(self, library: str, token_label: str, pin: str) -> None:
        self.library = library
        self.token_label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Any = None
        self._keys: dict[int, Any] = {}
        self._pepper: Any = None
        self._checked = 0.0
        with self._lock:
            self._open()
            self._load()

    # --- the session --------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> KeyringError:
        return KeySourceUnavailable(f"the PKCS#11 token {self.token_label!r} ({self.library}) cannot be reached: "
                            f"{type(exc).__name__}")

    def _open(self) -> None:
        try:
            token = pkcs11.lib(self.library).get_token(token_label=self.token_label)
            try:
                self._session = token.open(user_pin=self._pin, rw=True)
            except UserAlreadyLoggedIn:  # login is per process: another session of this process logged in
                self._session = token.open(rw=True)
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _load(self) -> None:
        """Read the labels of the token's secret keys (the lock is held)."""
        keys: dict[int, Any] = {}
        pepper = None
        seen: set[str] = set()
        for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            label = obj[Attribute.LABEL]
            match = _VERSION.match(label)
            if match or label == PEPPER:
                if label in seen:  # PKCS#11 does not keep labels unique: never pick one of two silently
                    raise KeyringError(f"the PKCS#11 token {self.token_label!r} holds two keys labelled {label!r}: "
                                       "remove the one no record uses")
                seen.add(label)
            if match:
                keys[int(match.group(1))] = obj
            elif label == PEPPER:
                pepper = obj
        self._keys, self._pepper = keys, pepper
        self._checked = time.monotonic()

    def _refresh(self, force: bool = False) -> None:
        """Re-read the token's labels (at most once a second unless ``force``): another process may have
        added a version (``master-key rotate`` or ``migrate``)."""
        with self._lock:
            if not force and time.monotonic() - self._checked < 1.0:
                return
            try:
                self._load()
            except PKCS11Error:
                try:  # the session may be gone (token reinserted, HSM restarted): open a new one once
                    self._open()
                    self._load()
                except (PKCS11Error, KeyringError) as exc:
                    raise self._unreachable(exc) from None

    def _key(self, version: int) -> Any:
        if version not in self._keys:
            self._refresh(force=True)
        try:
            return self._keys[version]
        except KeyError:
            raise KeyringError(f"unknown master key version {version} (no {LABEL.format(version)} on the token "
                               f"{self.token_label!r})") from None

    # --- KeyStore -----------------------------------------------------------------------

    def versions(self) -> list[int]:
        self._refresh()
        return sorted(self._keys)

    def holds(self, version: int) -> bool:
        if version not in self._keys:
            self._refresh(force=True)
        return version in self._keys

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        iv = os.urandom(12)
        with self._lock:
            key = self._key(version)
            try:
                wrapped: bytes = key.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad))
            except PKCS11Error as exc:
                raise self._unreachable(exc) from None
        return iv + wrapped

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        with self._lock:
            key = self._key(version)
            try:
                dek: bytes = key.decrypt(wrapped[12:], mechanism=Mechanism.AES_GCM,
                                         mechanism_param=GCMParams(wrapped[:12], aad))
            except PKCS11Error:
                self.check()  # an unreachable token is KeyringError; a reachable one refused the tag
                raise DecryptionError("data key does not verify") from None
        return dek

    def has_pepper(self) -> bool:
        if self._pepper is None:
            self._refresh(force=True)
        return self._pepper is not None

    def mac(self, data: bytes) -> bytes:
        if not self.has_pepper():
            raise KeyringError(f"the PKCS#11 token {self.token_label!r} holds no {PEPPER}")
        with self._lock:
            try:
                digest: bytes = self._pepper.sign(data, mechanism=Mechanism.SHA256_HMAC)
            except PKCS11Error as exc:
                raise self._unreachable(exc) from None
        return digest

    def export_pepper(self) -> bytes | None:
        return None  # non-extractable

    def import_pepper(self, pepper: bytes | None) -> None:
        """Store the pepper as a non-extractable HMAC key (a new random one if None)."""
        with self._lock:
            self._refresh(force=True)
            if self._pepper is not None:
                raise KeyringError(f"the PKCS#11 token {self.token_label!r} already holds a {PEPPER}")
            value = pepper if pepper is not None else secrets.token_bytes(32)
            try:
                made = self._session.create_object({
                    Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                    Attribute.VALUE: value, Attribute.LABEL: PEPPER, Attribute.TOKEN: True,
                    Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True, Attribute.VERIFY: True,
                })
            except PKCS11Error as exc:
                raise self._unreachable(exc) from None
            self._keep_if_alone(made, PEPPER)
            self._load()

    def create_version(self, version: int) -> None:
        with self._lock:
            self._refresh(force=True)
            if version in self._keys or (self._keys and version < max(self._keys)):
                raise KeyringError(f"master key version {version} is not above the token's versions")
            try:
                made = self._session.generate_key(KeyType.AES, 256, label=LABEL.format(version), store=True,
                                                  template={Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True,
                                                            Attribute.PRIVATE: True, Attribute.ENCRYPT: True,
                                                            Attribute.DECRYPT: True})
            except PKCS11Error as exc:
                raise self._unreachable(exc) from None
            self._keep_if_alone(made, LABEL.format(version))
            self._load()

    def _keep_if_alone(self, made: Any, label: str) -> None:
        """Destroy ``made`` and raise KeyringError if another process created a key with its ``label`` at the
        same time (the check before creating holds a lock of this process only). Nothing was sealed under
        ``made`` yet; if both creators see each other, both back out and a retry succeeds."""
        try:
            same = list(self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
            if len(same) > 1:
                made.destroy()
                raise KeyringError(f"another process created {label!r} on the PKCS#11 token {self.token_label!r} at "
                                   "the same time: try again")
        except PKCS11Error as exc:
            raise self._unreachable(exc) from None

    def retire_version(self, version: int) -> object:
        with self._lock:
            key = self._key(version)
            try:
                key[Attribute.LABEL] = RETIRED.format(version)
            except PKCS11Error as exc:
                raise self._unreachable(exc) from None
            self._load()
        return version

    def restore_version(self, version: int, token: object) -> None:
        with self._lock:
            for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                                  Attribute.LABEL: RETIRED.format(version)}):
                obj[Attribute.LABEL] = LABEL.format(version)
                break
            else:
                raise KeyringError(f"no retired master key version {version} on the token {self.token_label!r}")
            self._load()

    def check(self) -> None:
        self._refresh(force=True)


def pkcs11_store(library: str | None, token_label: str | None, pin: str | None, pin_file: Path | None) -> Pkcs11KeyStore:
    """Return the token's key store from the settings' values. Raises KeyringError naming what is missing."""
    if not library or not token_label:
        raise KeyringError("STRONGROOM_KEY_PROVIDER=pkcs11 needs STRONGROOM_PKCS11_LIBRARY and "
                           "STRONGROOM_PKCS11_TOKEN_LABEL")
    if pin is None and pin_file is not None:
        try:
            pin = pin_file.read_text().strip()
        except OSError as exc:
            raise KeyringError(f"STRONGROOM_PKCS11_PIN_FILE {pin_file} is unreadable: {exc.strerror}") from None
    if not pin:
        raise KeyringError("the PKCS#11 token needs a PIN: set STRONGROOM_PKCS11_PIN or STRONGROOM_PKCS11_PIN_FILE")
    return Pkcs11KeyStore(library, token_label, pin)
