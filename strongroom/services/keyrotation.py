"""Master key rotation: add a KEK version, then re-wrap every data key (resumable)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from strongroom.crypto.envelope import Envelope, Sealed
from strongroom.db import Database
from strongroom.models import ApiKey, ExchangeAccount
from strongroom.services.accounts import account_aad, sealed_of
from strongroom.services.apikeys import key_aad


class KeyRotationService:
    def __init__(self, db: Database, envelope: Envelope) -> None:
        self.db = db
        self.envelope = envelope

    def rotate(self, batch: int = 100, progress: Callable[[int], None] | None = None) -> tuple[int, int]:
        """Add a master key version and re-wrap every data key under it.

        Returns ``(new_version, rewrapped)``. Each batch commits on its own, and a record's
        version changes with its wrapped key, so a run killed half way leaves every record
        readable (old versions stay decrypt-only) and ``rewrap`` (or another ``rotate``) finishes.
        """
        version = self.envelope.keys.add_version()
        return version, self.rewrap(batch, progress)

    def pending(self) -> int:
        """Return how many records are wrapped under an older master key version."""
        current = self.envelope.keys.current_version
        with self.db.session() as session:
            accounts = session.scalars(select(ExchangeAccount.id).where(
                ExchangeAccount.kek_version < current, ExchangeAccount.status != "disconnected")).all()
            keys = session.scalars(select(ApiKey.id).where(ApiKey.kek_version < current)).all()
        return len(accounts) + len(keys)

    def rewrap(self, batch: int = 100, progress: Callable[[int], None] | None = None) -> int:
        """Re-wrap every data key under an older version with the current one; return the count."""
        current = self.envelope.keys.current_version
        done = 0
        while True:
            with self.db.session() as session:
                accounts = list(session.scalars(
                    select(ExchangeAccount).where(ExchangeAccount.kek_version < current,
                                                  ExchangeAccount.status != "disconnected")
                    .order_by(ExchangeAccount.id).limit(batch)))
                for account in accounts:
                    new = self.envelope.rewrap(sealed_of(account), account_aad(account))
                    account.wrapped_dek, account.kek_version = new.wrapped_dek, new.kek_version
                keys = [] if accounts else list(session.scalars(
                    select(ApiKey).where(ApiKey.kek_version < current).order_by(ApiKey.id).limit(batch)))
                for key in keys:
                    sealed = Sealed(key.secret_ciphertext, key.secret_nonce, key.secret_wrapped_dek, key.kek_version)
                    new = self.envelope.rewrap(sealed, key_aad(key))
                    key.secret_wrapped_dek, key.kek_version = new.wrapped_dek, new.kek_version
                n = len(accounts) + len(keys)
            if not n:
                return done
            done += n
            if progress:
                progress(done)
