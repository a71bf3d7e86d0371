"""The vault: how every secret at rest is sealed, opened and re-wrapped under a new master key.

Three kinds of rows hold secrets, each with envelope encryption (a fresh data key per seal, wrapped
by a versioned master key) and an AAD that binds the ciphertext to its row:

- exchange accounts: the credentials, as sorted JSON, in ``ciphertext``/``nonce``/``wrapped_dek``/
  ``kek_version``; AAD ``exchange-account|<public_id>|<user_id>|<exchange>``.
- HMAC API keys: ``{"current": s, "previous": s?}`` as JSON in ``secret_ciphertext``/``secret_nonce``/
  ``secret_wrapped_dek``/``kek_version``; AAD ``api-key|<key_id>|<user_id>``.
- stored exchange credentials (Cadenza's "credential"): like accounts, with AAD
  ``exchange-credential|<public_id>|<user_id>|<exchange>``.

The AAD bytes are part of the stored format: changing them makes existing rows unreadable.

Re-wrapping (master key rotation) only replaces ``wrapped_dek`` and ``kek_version``: it is a
compare-and-set on the values it read, so a credential rotation or key roll that commits in between
(a new ciphertext with a new data key) is never paired with the old data key; such a row is read
again and re-wrapped on a later pass if it still needs it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, select, update
from sqlalchemy.orm import Session

from strongroom.crypto.envelope import DecryptionError, Envelope, Sealed
from strongroom.crypto.keyring import KeyringError
from strongroom.db import Database, rowcount
from strongroom.enums import AccountStatus, CredentialStatus
from strongroom.errors import CredentialsUnreadable
from strongroom.models import ApiKey, ExchangeAccount, ExchangeCredential

log = logging.getLogger("strongroom.vault")


class AccountIdentity(Protocol):
    """What an account's AAD is made of (an ``ExchangeAccount`` or a row with these columns)."""

    @property
    def public_id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> int: ...
    @property
    def exchange(self) -> str: ...


class KeyIdentity(Protocol):
    """What an API key's AAD is made of (an ``ApiKey`` or a row with these columns)."""

    @property
    def key_id(self) -> str: ...
    @property
    def user_id(self) -> int: ...


def account_aad(account: AccountIdentity) -> bytes:
    """Return the AAD binding an account's ciphertext to its row: account, user and exchange."""
    return f"exchange-account|{account.public_id}|{account.user_id}|{account.exchange}".encode()


def credential_aad(credential: AccountIdentity) -> bytes:
    """Return the AAD binding a stored credential's ciphertext to its row: credential, user and exchange."""
    return f"exchange-credential|{credential.public_id}|{credential.user_id}|{credential.exchange}".encode()


def key_aad(key: KeyIdentity) -> bytes:
    """Return the AAD binding an HMAC key's ciphertext to its row: key and user."""
    return f"api-key|{key.key_id}|{key.user_id}".encode()


class Vault:
    """Seals, opens and re-wraps the secrets of exchange accounts and HMAC API keys."""

    def __init__(self, db: Database, envelope: Envelope) -> None:
        self.db = db
        self.envelope = envelope

    # --- exchange-account credentials ---------------------------------------------------------

    def seal_account_credentials(self, account: AccountIdentity, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Return the secret columns of ``account`` holding ``credentials`` encrypted under a new data key.

        Returns ``{column: value}`` for ``ciphertext``, ``nonce``, ``wrapped_dek`` and ``kek_version``,
        to be written together (``account.public_id`` must be set: it is part of the AAD).
        """
        sealed = self.envelope.seal(json.dumps(dict(credentials), sort_keys=True).encode(), account_aad(account))
        return {"ciphertext": sealed.ciphertext, "nonce": sealed.nonce, "wrapped_dek": sealed.wrapped_dek,
                "kek_version": sealed.kek_version}

    def open_account_credentials(self, account: ExchangeAccount) -> dict[str, str]:
        """Return an account's decrypted credentials (for internal use; never returned to a client).

        Raises CredentialsUnreadable if the stored record was altered, moved, shredded, or its
        master key version is gone.
        """
        sealed = Sealed(account.ciphertext, account.nonce, account.wrapped_dek, account.kek_version)
        return self._open_fields(sealed, account_aad(account), f"credentials of account {account.id}",
                                 "the stored credentials cannot be decrypted; rotate them to store new ones")

    # --- stored exchange credentials ----------------------------------------------------------

    def seal_credential(self, credential: AccountIdentity, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Return the secret columns of a stored credential holding ``credentials`` under a new data key.

        Returns ``{column: value}`` for ``ciphertext``, ``nonce``, ``wrapped_dek`` and ``kek_version``
        (``credential.public_id`` must be set: it is part of the AAD).
        """
        sealed = self.envelope.seal(json.dumps(dict(credentials), sort_keys=True).encode(),
                                    credential_aad(credential))
        return {"ciphertext": sealed.ciphertext, "nonce": sealed.nonce, "wrapped_dek": sealed.wrapped_dek,
                "kek_version": sealed.kek_version}

    def open_credential(self, credential: ExchangeCredential) -> dict[str, str]:
        """Return a stored credential's decrypted fields (internal use only; never returned to a client).

        Raises CredentialsUnreadable if the record was altered, moved, shredded (revoked), or its
        master key version is gone.
        """
        sealed = Sealed(credential.ciphertext, credential.nonce, credential.wrapped_dek, credential.kek_version)
        return self._open_fields(sealed, credential_aad(credential), f"credential {credential.id}",
                                 "the stored credential cannot be decrypted; rotate it to store new keys")

    def _open_fields(self, sealed: Sealed, aad: bytes, what: str, refusal: str) -> dict[str, str]:
        """Decrypt a sealed JSON object of secret fields; raise CredentialsUnreadable (logging ``what``, never
        a secret) if it does not open."""
        try:
            fields: dict[str, str] = json.loads(self.envelope.open(sealed, aad))
        except (DecryptionError, KeyringError, ValueError):
            log.error("stored %s cannot be decrypted", what)
            raise CredentialsUnreadable(refusal) from None
        return fields

    # --- HMAC key secrets ---------------------------------------------------------------------

    def seal_key_secret(self, key: KeyIdentity, doc: Mapping[str, str]) -> dict[str, Any]:
        """Return the secret columns of ``key`` holding ``doc`` (``{"current": s, "previous": s?}``) encrypted.

        Returns ``{column: value}`` for ``secret_ciphertext``, ``secret_nonce``, ``secret_wrapped_dek``
        and ``kek_version``, to be written together.
        """
        sealed = self.envelope.seal(json.dumps(dict(doc)).encode(), key_aad(key))
        return {"secret_ciphertext": sealed.ciphertext, "secret_nonce": sealed.nonce,
                "secret_wrapped_dek": sealed.wrapped_dek, "kek_version": sealed.kek_version}

    def open_key_secret(self, key: ApiKey) -> dict[str, str]:
        """Return an HMAC key's decrypted secrets ``{"current": s, "previous": s?}``.

        Raises DecryptionError (altered or moved) or KeyringError (master key version gone).
        """
        if key.secret_ciphertext is None or key.secret_nonce is None or key.secret_wrapped_dek is None \
                or key.kek_version is None:
            raise DecryptionError("this key holds no sealed secret")
        sealed = Sealed(key.secret_ciphertext, key.secret_nonce, key.secret_wrapped_dek, key.kek_version)
        doc: dict[str, str] = json.loads(self.envelope.open(sealed, key_aad(key)))
        return doc

    # --- master key rotation ------------------------------------------------------------------

    def pending(self) -> int:
        """Return how many live records are wrapped under an older master key version."""
        current = self.envelope.keys.current_version
        with self.db.session() as session:
            accounts = session.scalars(select(ExchangeAccount.id).where(
                ExchangeAccount.kek_version < current,
                ExchangeAccount.status != AccountStatus.DISCONNECTED)).all()
            keys = session.scalars(select(ApiKey.id).where(ApiKey.kek_version < current)).all()
            credentials = session.scalars(select(ExchangeCredential.id).where(
                ExchangeCredential.kek_version < current,
                ExchangeCredential.status != CredentialStatus.REVOKED)).all()
        return len(accounts) + len(keys) + len(credentials)

    def rewrap(self, batch: int = 100, progress: Callable[[int], None] | None = None) -> int:
        """Re-wrap every data key under an older master key version with the current one.

        Returns how many records were re-wrapped. Each batch commits on its own, and a record's
        version changes with its wrapped key, so a run killed half way leaves every record readable
        and a later run finishes. A record changed by someone else between read and write is left
        as they wrote it and read again (it is picked up again only if still under an old version).
        Raises DecryptionError or KeyringError for a record that does not decrypt (nothing of its
        batch is written).
        """
        current = self.envelope.keys.current_version
        done = 0
        while True:
            with self.db.session() as session:
                seen, written = self._rewrap_accounts(session, current, batch)
                if not seen:
                    seen, written = self._rewrap_keys(session, current, batch)
                if not seen:
                    seen, written = self._rewrap_credentials(session, current, batch)
            if not seen:
                return done
            done += written
            if progress and written:
                progress(done)

    def _rewrap_accounts(self, session: Session, current: int, batch: int) -> tuple[int, int]:
        table = ExchangeAccount.__table__
        return self._rewrap_sealed_rows(session, table, table.c.status != AccountStatus.DISCONNECTED, account_aad,
                                        current, batch)

    def _rewrap_credentials(self, session: Session, current: int, batch: int) -> tuple[int, int]:
        table = ExchangeCredential.__table__
        return self._rewrap_sealed_rows(session, table, table.c.status != CredentialStatus.REVOKED, credential_aad,
                                        current, batch)

    def _rewrap_sealed_rows(self, session: Session, table: Table, live: ColumnElement[bool],
                            aad: Callable[[Any], bytes], current: int, batch: int) -> tuple[int, int]:
        """Re-wrap one batch of a table holding sealed exchange secrets (accounts, stored credentials),
        each row a compare-and-set on the values read. Returns ``(rows read, rows written)``."""
        rows = session.execute(
            select(table.c.id, table.c.public_id, table.c.user_id, table.c.exchange, table.c.ciphertext,
                   table.c.nonce, table.c.wrapped_dek, table.c.kek_version)
            .where(table.c.kek_version < current, live)
            .order_by(table.c.id).limit(batch)
        ).all()
        written = 0
        for row in rows:
            new = self.envelope.rewrap(Sealed(row.ciphertext, row.nonce, row.wrapped_dek, row.kek_version), aad(row))
            written += rowcount(session.execute(
                update(table)
                .where(table.c.id == row.id, table.c.wrapped_dek == row.wrapped_dek, table.c.nonce == row.nonce,
                       table.c.kek_version == row.kek_version)
                # updated_at set to itself: a re-wrap is not a change of the record
                .values(wrapped_dek=new.wrapped_dek, kek_version=new.kek_version, updated_at=table.c.updated_at)
            ))
        return len(rows), written

    def _rewrap_keys(self, session: Session, current: int, batch: int) -> tuple[int, int]:
        table = ApiKey.__table__
        rows = session.execute(
            select(table.c.id, table.c.key_id, table.c.user_id, table.c.secret_ciphertext, table.c.secret_nonce,
                   table.c.secret_wrapped_dek, table.c.kek_version)
            .where(table.c.kek_version < current)
            .order_by(table.c.id).limit(batch)
        ).all()
        written = 0
        for row in rows:
            sealed = Sealed(row.secret_ciphertext, row.secret_nonce, row.secret_wrapped_dek, row.kek_version)
            new = self.envelope.rewrap(sealed, key_aad(row))
            written += rowcount(session.execute(
                update(table)
                .where(table.c.id == row.id, table.c.secret_wrapped_dek == row.secret_wrapped_dek,
                       table.c.secret_nonce == row.secret_nonce, table.c.kek_version == row.kek_version)
                .values(secret_wrapped_dek=new.wrapped_dek, kek_version=new.kek_version,
                        updated_at=table.c.updated_at)
            ))
        return len(rows), written
