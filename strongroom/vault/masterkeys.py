"""The master key (KEK) as the operator manages it: status, rotation, re-wrapping and retirement.

Rotation and re-wrapping themselves are :class:`KeyRotationService`'s; this adds what the
operator needs around them: per-version record counts, totals for progress, retiring a version
nothing uses any more, and an audit event for each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from strongroom.audit.services import AuditService
from strongroom.crypto.keyring import FileKeyProvider, KeyProvider, KeyringError
from strongroom.db import Database
from strongroom.errors import BadRequest, Conflict, Forbidden, NotFound
from strongroom.principal import Principal
from strongroom.scopes import WRITE
from strongroom.vault.rotation import KeyRotationService
from strongroom.vault.services import KeySourceIncomplete, records

# progress(done, total): records re-wrapped so far, and how many there were to do
Progress = Callable[[int, int], None]


def _records(count: int) -> str:
    return f"{records(count)} {'is' if count == 1 else 'are'}"


@dataclass(frozen=True)
class MasterKeyStatus:
    current_version: int
    versions: dict[int, int]  # every known version -> records sealed under it
    pending: int  # records under an older version (re-wrapped by ``rewrap``)
    key_file: Path | None  # None: keys from STRONGROOM_MASTER_KEYS
    missing: dict[int, int] = field(default_factory=dict)  # versions records use that the key source lacks


class MasterKeyService:
    def __init__(self, db: Database, keys: KeyProvider, audit: AuditService, rotation: KeyRotationService) -> None:
        self.db = db
        self.keys = keys
        self.audit = audit
        self.rotation = rotation

    @staticmethod
    def _admin(principal: Principal) -> None:
        principal.require(WRITE)
        if not principal.is_admin:
            raise Forbidden("only the operator manages the master key")

    def usage(self) -> dict[int, int]:
        """Return ``{version: records sealed under it}`` for versions in use, over every table of the
        vault's registry (accounts, stored credentials, HMAC keys; shredded records use no version)."""
        return self.rotation.vault.usage()

    def status(self) -> MasterKeyStatus:
        """Return the current version, every version with its record count, what is pending, and the
        versions records use that the key source does not hold (``missing``: a stale key file)."""
        current = self.keys.current_version
        usage = self.usage()
        held = set(self.keys.versions())
        versions = {v: usage.get(v, 0) for v in sorted({*held, *usage})}
        pending = sum(n for v, n in usage.items() if v < current and v in held)
        missing = {v: n for v, n in usage.items() if v not in held}
        key_file = self.keys.path.resolve() if isinstance(self.keys, FileKeyProvider) else None
        return MasterKeyStatus(current, versions, pending, key_file, missing)

    def _complete(self) -> None:
        """Refuse (Conflict) while records use versions the key source lacks: a new version would be
        numbered like one of them, and re-wrapping cannot open them."""
        try:
            self.rotation.vault.check_key_source()
        except KeySourceIncomplete as exc:
            raise Conflict(str(exc)) from None

    def rotate(self, principal: Principal, batch: int = 100, progress: Progress | None = None) -> tuple[int, int]:
        """Add a master key version, then re-wrap every record under it (resumable, see KeyRotationService).

        Returns ``(new_version, rewrapped)``. Raises Forbidden, Conflict (records use a version the key
        source lacks), KeyringError (keys from the environment).
        """
        self._admin(principal)
        self._complete()
        version = self.keys.add_version()
        self.audit.record_now("master_key.rotate", "ok", principal=principal, details={"version": version})
        return version, self.rewrap(principal, batch, progress)

    def rewrap(self, principal: Principal, batch: int = 100, progress: Progress | None = None) -> int:
        """Re-wrap every record still under an older version with the current one; return the count."""
        self._admin(principal)
        if not 1 <= batch <= 10_000:
            raise BadRequest("the batch size must be between 1 and 10000")
        self._complete()
        total = self.rotation.pending()
        if progress:
            progress(0, total)
        done = self.rotation.rewrap(batch, (lambda n: progress(n, max(total, n))) if progress else None)
        if done:
            self.audit.record_now("master_key.rewrap", "ok", principal=principal,
                                  details={"version": self.keys.current_version, "rewrapped": done})
        return done

    def retire(self, principal: Principal, version: int) -> None:
        """Remove master key ``version`` for good.

        Refuses while any record is sealed under it, and never removes the current version. A
        record sealed under it while it is being removed (a server that had not yet seen the
        rotation) puts it back and refuses. Raises Forbidden, NotFound (unknown version),
        Conflict (current, or in use), BadRequest (keys from STRONGROOM_MASTER_KEYS: the operator
        removes them there).
        """
        self._admin(principal)
        if version not in self.keys.versions():
            raise NotFound(f"there is no master key version {version}")
        if version == self.keys.current_version:
            raise Conflict(f"version {version} is the current master key: rotate first, then retire it")
        used = self.usage().get(version, 0)
        if used:
            raise Conflict(f"{_records(used)} still sealed under version {version}: run "
                           "'strongroom master-key rewrap' first")
        try:
            kek = self.keys.retire_version(version)
        except KeyringError as exc:
            raise BadRequest(str(exc)) from None
        used = self.usage().get(version, 0)
        if used:
            self.keys.restore_version(version, kek)
            raise Conflict(f"{_records(used)} now sealed under version {version} (a server had not seen the "
                           "rotation yet), so it was kept: "
                           "run 'strongroom master-key rewrap', then retire it again")
        self.audit.record_now("master_key.retire", "ok", principal=principal, details={"version": version})
