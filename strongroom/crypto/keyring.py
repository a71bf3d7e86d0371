"""Master keys (KEKs) and the server pepper, behind a small provider interface.

The KEK never sits in the database. It comes from a key file (created on first start, mode
0600) or from the environment. A Vault Transit or KMS provider can replace these later by
implementing :class:`KeyProvider`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypedDict


class KeyringError(Exception):
    """The master key material is missing, unreadable or malformed."""


class KeyProvider(Protocol):
    """What the envelope needs from a key source."""

    current_version: int
    pepper: bytes

    def kek(self, version: int) -> bytes:
        """Return the 32-byte KEK of ``version``; raise KeyringError if it is unknown."""
        ...

    def versions(self) -> list[int]:
        """Return every known version, oldest first."""
        ...

    def add_version(self) -> int:
        """Create a new current version and return it."""
        ...

    def retire_version(self, version: int) -> bytes:
        """Forget ``version`` (never the current one) and return its KEK, for :meth:`restore_version`.

        Raises KeyringError (unknown or current version, or keys this provider cannot change).
        """
        ...

    def restore_version(self, version: int, kek: bytes) -> None:
        """Put back a version :meth:`retire_version` removed. Raises KeyringError."""
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
    """Keys given as a JSON document (e.g. ``STRONGROOM_MASTER_KEYS``). Cannot add versions."""

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

    def add_version(self) -> int:
        raise KeyringError("keys from the environment are rotated by the operator, not by Strongroom")

    def retire_version(self, version: int) -> bytes:
        raise KeyringError(f"keys from the environment are retired by the operator: remove version {version} "
                           "from STRONGROOM_MASTER_KEYS")

    def restore_version(self, version: int, kek: bytes) -> None:
        raise KeyringError("keys from the environment are changed by the operator, not by Strongroom")


class FileKeyProvider(StaticKeyProvider):
    """Keys in a JSON file, created with mode 0600 on first use; new versions are written atomically.

    A running server notices a rotation done by ``strongroom master-key rotate`` in another
    process: the file is re-read when its mtime changes (checked at most once a second) and
    whenever an unknown version is asked for.
    """

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

    def add_version(self) -> int:
        with self._changing():
            new = max(self._versions) + 1
            doc: KeyDocument = {
                "current": new,
                "versions": {str(v): _b64(k) for v, k in {**self._versions, new: secrets.token_bytes(32)}.items()},
                "pepper": _b64(self.pepper),
            }
            self._write(doc)
            self.reload()
        return new

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

    def restore_version(self, version: int, kek: bytes) -> None:
        """Put back a version :meth:`retire_version` removed (the current version is unchanged)."""
        if len(kek) != 32:
            raise KeyringError("master key material is malformed")
        with self._changing():
            self._write(self._document({**self._versions, version: kek}))
            self.reload()


def load_provider(key_file: Path, env_document: str | None) -> KeyProvider:
    """Return the provider the settings ask for: the environment document if set, else the file."""
    if env_document:
        return StaticKeyProvider(env_document)
    return FileKeyProvider(key_file)
