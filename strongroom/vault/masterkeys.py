"""The master key (KEK) as the operator manages it: status, rotation, re-wrapping and retirement.

Rotation and re-wrapping themselves are :class:`KeyRotationService`'s; this adds what the
operator needs around them: per-version record counts, totals for progress, retiring a version
nothing uses any more, and an audit event for each.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from strongroom import events
from strongroom.audit.services import AuditService
from strongroom.crypto.keyring import KeyChain, KeyringError, StaticKeyProvider
from strongroom.db import Database
from strongroom.enums import EventType
from strongroom.errors import BadRequest, Conflict, Forbidden, NotFound
from strongroom.principal import Principal
from strongroom.scopes import WRITE
from strongroom.vault.rotation import KeyRotationService
from strongroom.vault.services import KeySourceIncomplete, records

log = logging.getLogger("strongroom.vault")

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
    providers: dict[int, str] = field(default_factory=dict)  # held version -> its source ("file", "pkcs11", ...)
    primary: str = "file"  # STRONGROOM_KEY_PROVIDER: where rotate makes versions


@dataclass(frozen=True)
class Migration:
    version: int  # the current version, in the target source
    provider: str
    rewrapped: int
    elsewhere: dict[int, tuple[str, int]]  # versions other sources still hold -> (source, records under it)


_CONFIGURE = {
    "pkcs11": "set STRONGROOM_PKCS11_LIBRARY, STRONGROOM_PKCS11_TOKEN_LABEL and STRONGROOM_PKCS11_PIN (or _PIN_FILE)",
    "aws-kms": "set STRONGROOM_AWS_KMS_REGION (and STRONGROOM_AWS_KMS_KEY_ID, or let Strongroom create the key)",
    "file": "the key file must exist (STRONGROOM_MASTER_KEY_FILE); it is never made with a new pepper by a migration",
}


class MasterKeyService:
    def __init__(self, db: Database, keys: KeyChain, audit: AuditService, rotation: KeyRotationService) -> None:
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
        providers = {v: store.name for v, store in sorted(self.keys.owners().items())}
        return MasterKeyStatus(current, versions, pending, self.keys.file_path, missing, providers,
                               self.keys.primary.name)

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
        version = self.keys.rotate()
        self._rotated(principal, "master_key.rotate", version, self.keys.owner(version).name)
        return version, self.rewrap(principal, batch, progress)

    def _rotated(self, principal: Principal, action: str, version: int, provider: str) -> None:
        """Audit ``action`` and record ``master_key.rotated`` (admin-only, the deployment's: no user) in one
        transaction. The new version exists already (in the key source, not the database), so a database
        fault is logged, not raised: the re-wrap that follows fails on its own and is resumed."""
        details = {"version": version, "provider": provider}
        try:
            with self.db.session() as session:
                self.audit.record(session, action, "ok", principal=principal, details=details)
                events.record(session, EventType.MASTER_KEY_ROTATED, user_id=None,
                              data={**details, "via": action.removeprefix("master_key.")})
        except Exception as exc:  # noqa: BLE001 - the type only (a database error's text carries parameters)
            log.error("could not record the master key rotation to version %s: %s", version, type(exc).__name__)

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

    def migrate(self, principal: Principal, to: str, batch: int = 100,
                progress: Progress | None = None) -> Migration:
        """Move every record to key source ``to`` ("file", "pkcs11", "aws-kms"), online and resumable.

        The pepper goes first (imported as a non-extractable HMAC key: bearer keys, tokens and
        fingerprints made before keep matching), then a new version is made in ``to`` (unless the current
        one is already there: a re-run resumes) and every record is re-wrapped under it with the same
        compare-and-set as rotation. Raises Forbidden, BadRequest (``to`` not configured), Conflict (the
        pepper cannot be moved, or ``to`` holds another one; records use a version no source holds),
        KeyringError (a source cannot be reached).
        """
        self._admin(principal)
        if not 1 <= batch <= 10_000:
            raise BadRequest("the batch size must be between 1 and 10000")
        target = self.keys.store(to)
        if target is None:
            raise BadRequest(f"the {to} key source is not configured: {_CONFIGURE.get(to, '')}".rstrip(": "))
        self._complete()
        others = [s for s in self.keys.stores if s is not target and s.has_pepper()]
        if not target.has_pepper():
            pepper = self.keys.pepper()
            if pepper is None:
                raise Conflict(f"the pepper cannot be read out of {', '.join(s.name for s in others) or 'any source'} "
                               f"to move it to {to}: keep that source as STRONGROOM_KEY_PROVIDER")
            target.import_pepper(pepper)
        probe = b"strongroom pepper check"
        if any(not hmac.compare_digest(s.mac(probe), target.mac(probe)) for s in others):
            raise Conflict(f"the {to} key source holds another pepper than {', '.join(s.name for s in others)}: "
                           "bearer keys and tokens would stop matching; remove its pepper key first")
        current = self.keys.current_version
        if self.keys.owner(current) is target:
            version = current
        else:
            version = self.keys.rotate(target)
            self._rotated(principal, "master_key.migrate", version, to)
        done = self.rewrap(principal, batch, progress)
        usage = self.usage()
        left = {v: (self.keys.owner(v).name, usage.get(v, 0)) for v in self.keys.versions()
                if self.keys.owner(v) is not target}
        return Migration(version, to, done, left)

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
        store = self.keys.owner(version)
        if isinstance(store, StaticKeyProvider) and version == store.current_version:
            raise Conflict(f"version {version} is the newest of the {store.name} key source, which the records no "
                           "longer use: stop using that source instead (move the key file away, or unset "
                           "STRONGROOM_MASTER_KEYS), keeping a copy with the backups that need it")
        try:
            kept = store.retire_version(version)
        except KeyringError as exc:
            raise BadRequest(str(exc)) from None
        used = self.usage().get(version, 0)
        if used:
            store.restore_version(version, kept)
            raise Conflict(f"{_records(used)} now sealed under version {version} (a server had not seen the "
                           "rotation yet), so it was kept: "
                           "run 'strongroom master-key rewrap', then retire it again")
        self.audit.record_now("master_key.retire", "ok", principal=principal, details={"version": version})
