"""Master keys (KEKs) and the server pepper, behind a wrap/unwrap/mac seam.

The KEK never sits in the database, and never leaves a key source that can keep it: a source wraps
and unwraps each record's data key itself and computes HMACs under the pepper (:class:`KeyStore`).
Sources: a key file (created on first start, mode 0600) or the environment (this module), an HSM
through PKCS#11 (:mod:`strongroom.crypto.pkcs11keys`) and AWS KMS (:mod:`strongroom.crypto.kmskeys`).
:class:`KeyChain` puts the configured ones together as the :class:`KeyProvider` the rest uses.
"""

from __future__ import annotations

import base64
import fcntl
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyringError(Exception):
    """The master key material is missing, unreadable, malformed or unreachable."""


class KeySourceUnavailable(KeyringError):
    """The HSM or KMS holding the master key does not answer now (a retry may succeed)."""


class DecryptionError(Exception):
    """The ciphertext, its wrapped key or its binding (AAD) does not check out."""


def wrap_aad(aad: bytes, version: int) -> bytes:
    """Return the AAD a data key is wrapped with: the record's AAD bound to the master key version."""
    return b"strongroom-dek|v%d|" % version + aad


class KeyStore(Protocol):
    """One source of master key versions (a key file, the environment, an HSM, a KMS).

    The KEK never leaves a store that can keep it: a store wraps and unwraps data keys itself.
    ``aad`` given to :meth:`wrap`/:meth:`unwrap` is already bound to the version (:func:`wrap_aad`).
    """

    name: str  # "file", "environment", "pkcs11", "aws-kms"

    def versions(self) -> list[int]:
        """Return every version this store holds, oldest first."""
        ...

    def holds(self, version: int) -> bool:
        """Return True if this store holds ``version``, reading its list again first if it seems not to
        (another process may just have made it)."""
        ...

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        """Return ``dek`` wrapped by the KEK of ``version``. Raises KeyringError."""
        ...

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """Return the data key; raise DecryptionError if it does not verify, KeyringError if the version is gone."""
        ...

    def has_pepper(self) -> bool:
        """Return True if this store holds the pepper (for :meth:`mac`)."""
        ...

    def mac(self, data: bytes) -> bytes:
        """Return HMAC-SHA256(pepper, data). Raises KeyringError if this store holds no pepper."""
        ...

    def export_pepper(self) -> bytes | None:
        """Return the pepper if this store may give it out (a key file or the environment), else None."""
        ...

    def import_pepper(self, pepper: bytes | None) -> None:
        """Keep ``pepper`` (non-extractable where the store allows; None: make a new one). Raises KeyringError."""
        ...

    def create_version(self, version: int) -> None:
        """Create master key ``version`` (numbered by the caller, above every version in use). Raises KeyringError."""
        ...

    def retire_version(self, version: int) -> object:
        """Forget ``version``; return what :meth:`restore_version` needs to put it back. Raises KeyringError."""
        ...

    def restore_version(self, version: int, token: object) -> None:
        """Put back a version :meth:`retire_version` removed. Raises KeyringError."""
        ...

    def check(self) -> None:
        """Raise KeyringError (one line) if the store cannot be reached now."""
        ...


class KeyProvider(Protocol):
    """What the envelope and the hashes need from the master key: wrap, unwrap, mac, versions, rotate."""

    @property
    def current_version(self) -> int: ...

    def versions(self) -> list[int]:
        """Return every known version, oldest first."""
        ...

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        """Return ``(current version, dek wrapped under it)``, bound to ``aad``."""
        ...

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        """Return the data key ``wrapped`` under ``version`` for ``aad``. Raises DecryptionError, KeyringError."""
        ...

    def mac(self, data: bytes) -> bytes:
        """Return HMAC-SHA256 of ``data`` under the pepper."""
        ...

    def rotate(self) -> int:
        """Create a new current version and return it."""
        ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KeyDocument(TypedDict):
    """The master key document (file or ``STRONGROOM_MASTER_KEYS``): versions and pepper in base64."""

    current: int
    versions: dict[str, str]
    pepper: str


def _parse(doc: Any) -> tuple[int, dict[int, bytes], bytes]:
    """Return (current version, KEK by version, pepper) from ``doc``, parsed JSON of any shape (checked here).

    Raises KeyringError if it is not a well-formed :class:`KeyDocument`.
    """
    try:
        versions = {int(v): base64.b64decode(k, validate=True) for v, k in doc["versions"].items()}
        current = int(doc["current"])
        pepper = base64.b64decode(doc["pepper"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyringError("master key material is malformed") from exc
    if current not in versions or any(len(k) != 32 for k in versions.values()) or len(pepper) < 32:
        raise KeyringError("master key material is malformed")
    return current, versions, pepper


class StaticKeyProvider:
    """Keys given as a JSON document (e.g. ``STRONGROOM_MASTER_KEYS``). Cannot add versions.

    Data keys are wrapped in-process: ``12-byte nonce + AES-256-GCM(KEK, DEK, wrap_aad)``.
    """

    name = "environment"

    def __init__(self, document: str) -> None:
        try:
            doc = json.loads(document)
        except ValueError as exc:
            raise KeyringError("master key material is malformed") from exc
        self.current_version, self._versions, self.pepper = _parse(doc)

    def kek(self, version: int) -> bytes:
        try:
            return self._versions[version]
        except KeyError:
            raise KeyringError(f"unknown master key version {version}") from None

    def versions(self) -> list[int]:
        return sorted(self._versions)

    def holds(self, version: int) -> bool:
        try:
            self.kek(version)
        except KeyringError:
            return False
        return True

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.kek(version)).encrypt(nonce, dek, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        try:
            return AESGCM(self.kek(version)).decrypt(wrapped[:12], wrapped[12:], aad)
        except InvalidTag:
            raise DecryptionError("data key does not verify") from None

    def has_pepper(self) -> bool:
        return True

    def mac(self, data: bytes) -> bytes:
        return hmac.digest(self.pepper, data, "sha256")

    def export_pepper(self) -> bytes | None:
        return self.pepper

    def import_pepper(self, pepper: bytes | None) -> None:
        if pepper is None or not hmac.compare_digest(pepper, self.pepper):
            raise KeyringError(f"the {self.name} key source holds another pepper")

    def check(self) -> None:
        return None

    def create_version(self, version: int) -> None:
        raise KeyringError("keys from the environment are rotated by the operator, not by Strongroom")

    def add_version(self) -> int:
        raise KeyringError("keys from the environment are rotated by the operator, not by Strongroom")

    def retire_version(self, version: int) -> bytes:
        raise KeyringError(f"keys from the environment are retired by the operator: remove version {version} "
                           "from STRONGROOM_MASTER_KEYS")

    def restore_version(self, version: int, token: object) -> None:
        raise KeyringError("keys from the environment are changed by the operator, not by Strongroom")


class FileKeyProvider(StaticKeyProvider):
    """Keys in a JSON file, created with mode 0600 on first use; new versions are written atomically.

    A running server notices a rotation done by ``strongroom master-key rotate`` in another
    process: the file is re-read when its mtime changes (checked at most once a second) and
    whenever an unknown version is asked for.
    """

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._checked = 0.0
        self._mtime = 0.0
        if not self.path.exists():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            doc: KeyDocument = {"current": 1, "versions": {"1": _b64(secrets.token_bytes(32))},
                                "pepper": _b64(secrets.token_bytes(32))}
            self._write(doc, exclusive=True)
        self.reload()

    def reload(self) -> None:
        try:
            self._mtime = self.path.stat().st_mtime
            text = self.path.read_text()
        except OSError as exc:
            raise KeyringError("master key file is unreadable") from exc
        super().__init__(text)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError:
            return
        if changed or force:
            self.reload()

    @property
    def current_version(self) -> int:
        self._refresh()
        return self._current

    @current_version.setter
    def current_version(self, value: int) -> None:
        self._current = value

    def kek(self, version: int) -> bytes:
        if version not in self._versions:
            self._refresh(force=True)
        return super().kek(version)

    def versions(self) -> list[int]:
        self._refresh()
        return super().versions()

    def _write(self, doc: KeyDocument, *, exclusive: bool = False) -> None:
        data = json.dumps(doc, indent=2, sort_keys=True).encode()
        if exclusive:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return  # another process created it first; reload() reads theirs
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".master-key-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold an exclusive lock on the key file's sibling ``.master-key.lock`` and re-read the file:
        two processes changing versions at once (rotate, retire) must not lose one another's change."""
        fd = os.open(self.path.parent / ".master-key.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.reload()
            yield
        finally:
            os.close(fd)  # releases the lock

    def add_version(self, number: int | None = None) -> int:
        """Add a new current version (``number``, or one above the file's highest) and return it."""
        with self._changing():
            new = number if number is not None else max(self._versions) + 1
            if new in self._versions or new < max(self._versions):
                raise KeyringError(f"master key version {new} is not above the key file's versions")
            doc: KeyDocument = {
                "current": new,
                "versions": {str(v): _b64(k) for v, k in {**self._versions, new: secrets.token_bytes(32)}.items()},
                "pepper": _b64(self.pepper),
            }
            self._write(doc)
            self.reload()
        return new

    def create_version(self, version: int) -> None:
        self.add_version(version)

    def _document(self, versions: dict[int, bytes]) -> KeyDocument:
        return {"current": self._current, "versions": {str(v): _b64(k) for v, k in sorted(versions.items())},
                "pepper": _b64(self.pepper)}

    def retire_version(self, version: int) -> bytes:
        """Remove ``version`` from the key file (atomically) and return its KEK.

        The caller checks first that no record still uses it: what it sealed cannot be opened
        afterwards. Raises KeyringError for an unknown version or the current one.
        """
        with self._changing():
            if version == self._current:
                raise KeyringError(f"version {version} is the current master key; it cannot be retired")
            if version not in self._versions:
                raise KeyringError(f"unknown master key version {version}")
            kek = self._versions[version]
            self._write(self._document({v: k for v, k in self._versions.items() if v != version}))
            self.reload()
        return kek

    def restore_version(self, version: int, token: object) -> None:
        """Put back a version :meth:`retire_version` removed (the current version is unchanged)."""
        kek = token
        if not isinstance(kek, bytes) or len(kek) != 32:
            raise KeyringError("master key material is malformed")
        with self._changing():
            self._write(self._document({**self._versions, version: kek}))
            self.reload()


class KeyChain:
    """The master key as the rest of Strongroom sees it (:class:`KeyProvider`): every configured store.

    Versions are numbered across stores: each version lives in one store (a key file's versions 1-2 and
    an HSM's version 3 after a migration). The current version is the highest any store holds, so a
    server keeps serving while ``master-key migrate`` adds a version in another store and re-wraps
    every record under it. ``primary`` (``STRONGROOM_KEY_PROVIDER``) is where :meth:`rotate` creates
    versions and whose pepper :meth:`mac` uses.
    """

    def __init__(self, primary: KeyStore, others: list[KeyStore] | None = None) -> None:
        self.primary = primary
        self.stores: list[KeyStore] = [primary, *(others or [])]

    def store(self, name: str) -> KeyStore | None:
        """Return the configured store called ``name`` ("file", "pkcs11", ...), or None."""
        return next((s for s in self.stores if s.name == name), None)

    def owners(self) -> dict[int, KeyStore]:
        """Return ``{version: store holding it}`` (the first configured store, primary first, on a tie)."""
        found: dict[int, KeyStore] = {}
        for store in self.stores:
            for version in store.versions():
                found.setdefault(version, store)
        return found

    def owner(self, version: int) -> KeyStore:
        for store in self.stores:
            if version in store.versions():
                return store
        for store in self.stores:  # made a moment ago by another process (rotate, migrate)?
            if store.holds(version):
                return store
        raise KeyringError(f"unknown master key version {version}")

    @property
    def current_version(self) -> int:
        """The highest current version of any store (a key file or document names its own current one)."""
        currents = [s.current_version if isinstance(s, StaticKeyProvider) else max(s.versions(), default=0)
                    for s in self.stores]
        if not any(currents):
            raise KeyringError("no master key version is configured")
        return max(currents)

    def versions(self) -> list[int]:
        return sorted({v for store in self.stores for v in store.versions()})

    def wrap(self, dek: bytes, aad: bytes) -> tuple[int, bytes]:
        version = self.current_version
        return version, self.owner(version).wrap(version, dek, wrap_aad(aad, version))

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return self.owner(version).unwrap(version, wrapped, wrap_aad(aad, version))

    def mac(self, data: bytes) -> bytes:
        store = self.primary if self.primary.has_pepper() else next((s for s in self.stores if s.has_pepper()), None)
        if store is None:
            raise KeyringError(f"the {self.primary.name} key source holds no pepper: run "
                               f"'strongroom master-key migrate --to {self.primary.name}' with the old key source "
                               "still configured")
        return store.mac(data)

    def pepper(self) -> bytes | None:
        """Return the pepper from a store that may give it out (file or environment), else None."""
        return next((p for p in (s.export_pepper() for s in self.stores) if p is not None), None)

    def next_version(self) -> int:
        held = self.versions()
        return (held[-1] if held else 0) + 1

    def rotate(self, store: KeyStore | None = None) -> int:
        """Create the next version in ``store`` (default: the primary) and return it."""
        version = self.next_version()
        (store or self.primary).create_version(version)
        return version

    def add_version(self) -> int:
        """The same as :meth:`rotate` (the name the key-file era used)."""
        return self.rotate()

    def retire_version(self, version: int) -> object:
        if version == self.current_version:
            raise KeyringError(f"version {version} is the current master key; it cannot be retired")
        return self.owner(version).retire_version(version)

    def check(self) -> None:
        """Raise KeyringError (one line) if any configured store cannot be reached."""
        for store in self.stores:
            store.check()

    @property
    def remote(self) -> bool:
        """True if a store lives outside this process (an HSM, a KMS): readiness checks reach it."""
        return any(not isinstance(s, StaticKeyProvider) for s in self.stores)

    @property
    def file_path(self) -> Path | None:
        """The key file, if one is configured."""
        store = self.store("file")
        return store.path.resolve() if isinstance(store, FileKeyProvider) else None


def load_provider(key_file: Path, env_document: str | None) -> KeyChain:
    """Return the file or environment key source alone (``build_keys`` in :mod:`strongroom.crypto.providers`
    adds an HSM or a KMS)."""
    return KeyChain(load_store(key_file, env_document))


def load_store(key_file: Path, env_document: str | None) -> StaticKeyProvider:
    """Return the environment document's keys if set, else the key file's (created if missing)."""
    if env_document:
        return StaticKeyProvider(env_document)
    return FileKeyProvider(key_file)
