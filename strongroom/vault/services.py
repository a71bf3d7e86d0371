"""The vault: how every secret at rest is sealed, opened and re-wrapped under a new master key.

Every table that holds a sealed secret is registered here, once, in :data:`SEALED_TABLES` (its
model, its sealed columns, the AAD binding a ciphertext to its row, and which rows are live). Seal,
open, re-wrap, pending, usage (``master-key status``) and retire read only this registry, so a new
table with a secret is counted everywhere the moment it is registered, and a test fails if a model
has a sealed column that is not.

Each record uses envelope encryption: a fresh data key per seal, wrapped by a versioned master key.
The registered tables:

- exchange accounts: the credentials, as sorted JSON, in ``ciphertext``/``nonce``/``wrapped_dek``/
  ``kek_version``; AAD ``exchange-account|<public_id>|<user_id>|<exchange>``. A disconnected
  account's ciphertext is shredded: it is not live.
- stored exchange credentials (Cadenza's "credential"): like accounts, with AAD
  ``exchange-credential|<public_id>|<user_id>|<exchange>``. A revoked credential is shredded.
- HMAC API keys: ``{"current": s, "previous": s?}`` as JSON in ``secret_ciphertext``/``secret_nonce``/
  ``secret_wrapped_dek``/``kek_version``; AAD ``api-key|<key_id>|<user_id>``. Other kinds of key
  hold no sealed secret (``kek_version`` is NULL).
- webhook endpoints: the signing secret(s) ``{"current": s, "previous": s?}`` (``whsec_`` HMAC secrets or
  ``whsk_`` Ed25519 private keys) in ``secret_ciphertext``/``secret_nonce``/``secret_wrapped_dek``/
  ``kek_version``; AAD ``webhook|<public_id>|<user_id>``. Every endpoint holds one (a deleted endpoint's
  row is gone).

The AAD bytes are part of the stored format: changing them makes existing rows unreadable.

Re-wrapping (master key rotation) only replaces the wrapped data key and its version: it is a
compare-and-set on the values it read, so a credential rotation or key roll that commits in between
(a new ciphertext with a new data key) is never paired with the old data key; such a row is read
again and re-wrapped on a later pass if it still needs it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, func, select, update
from sqlalchemy.orm import Session

from strongroom.crypto.envelope import DecryptionError, Envelope, Sealed
from strongroom.crypto.keyring import KeyringError, KeySourceUnavailable
from strongroom.db import Base, Database, rowcount
from strongroom.enums import AccountStatus, CredentialStatus
from strongroom.errors import CredentialsUnreadable, ServiceUnavailable
from strongroom.models import ApiKey, ExchangeAccount, ExchangeCredential, WebhookEndpoint

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


class WebhookIdentity(Protocol):
    """What a webhook endpoint's AAD is made of (a ``WebhookEndpoint`` or a row with these columns)."""

    @property
    def public_id(self) -> str: ...
    @property
    def user_id(self) -> int: ...


def webhook_aad(endpoint: WebhookIdentity) -> bytes:
    """Return the AAD binding a webhook endpoint's sealed signing secrets to its row: endpoint and user."""
    return f"webhook|{endpoint.public_id}|{endpoint.user_id}".encode()


@dataclass(frozen=True)
class SealedTable:
    """One table whose rows hold a sealed secret: where it is, what binds it, which rows hold one.

    ``identity`` names the columns the AAD is made of (``aad`` reads them from a model instance or a
    row); ``live(table)`` selects the rows that hold a secret (shredded and secret-less rows do not).
    """

    label: str  # what a record of it is called in messages ("exchange account")
    model: type[Base]
    ciphertext: str
    nonce: str
    wrapped_dek: str
    identity: tuple[str, ...]
    aad: Callable[[Any], bytes]
    live: Callable[[Table], ColumnElement[bool]]
    version: str = "kek_version"

    @property
    def table(self) -> Table:
        table = self.model.__table__
        assert isinstance(table, Table)
        return table

    @property
    def sealed_columns(self) -> frozenset[str]:
        """The columns that hold the sealed secret and its master key version."""
        return frozenset({self.ciphertext, self.nonce, self.wrapped_dek, self.version})

    def columns(self, sealed: Sealed) -> dict[str, Any]:
        """Return ``{column: value}`` storing ``sealed`` in this table's columns (written together)."""
        return {self.ciphertext: sealed.ciphertext, self.nonce: sealed.nonce, self.wrapped_dek: sealed.wrapped_dek,
                self.version: sealed.kek_version}

    def sealed_of(self, row: Any) -> Sealed | None:
        """Return what ``row`` (a model instance or a selected row) holds sealed, or None if it holds nothing."""
        values = [getattr(row, self.ciphertext), getattr(row, self.nonce), getattr(row, self.wrapped_dek),
                  getattr(row, self.version)]
        if any(v is None for v in values):
            return None
        return Sealed(*values)


EXCHANGE_ACCOUNTS = SealedTable(
    "exchange account", ExchangeAccount, "ciphertext", "nonce", "wrapped_dek",
    identity=("public_id", "user_id", "exchange"), aad=account_aad,
    live=lambda t: t.c.status != AccountStatus.DISCONNECTED)
EXCHANGE_CREDENTIALS = SealedTable(
    "stored exchange credential", ExchangeCredential, "ciphertext", "nonce", "wrapped_dek",
    identity=("public_id", "user_id", "exchange"), aad=credential_aad,
    live=lambda t: t.c.status != CredentialStatus.REVOKED)
API_KEYS = SealedTable(
    "HMAC API key", ApiKey, "secret_ciphertext", "secret_nonce", "secret_wrapped_dek",
    identity=("key_id", "user_id"), aad=key_aad,
    live=lambda t: t.c.kek_version.is_not(None))
WEBHOOK_ENDPOINTS = SealedTable(
    "webhook endpoint", WebhookEndpoint, "secret_ciphertext", "secret_nonce", "secret_wrapped_dek",
    identity=("public_id", "user_id"), aad=webhook_aad,
    live=lambda t: t.c.kek_version.is_not(None))

# Every table holding a sealed secret. Register a new one here, or its records are neither re-wrapped
# nor counted when a master key version is retired (tests/vault checks that every model's sealed
# columns are registered).
SEALED_TABLES: tuple[SealedTable, ...] = (EXCHANGE_ACCOUNTS, EXCHANGE_CREDENTIALS, API_KEYS, WEBHOOK_ENDPOINTS)


def records(count: int) -> str:
    """``"1 record"`` / ``"N records"``."""
    return f"{count} record" + ("" if count == 1 else "s")


class KeySourceIncomplete(Exception):
    """Records are sealed under master key versions the key source does not hold (a stale key file)."""

    def __init__(self, missing: Mapping[int, int]) -> None:
        self.missing = dict(missing)
        said = ", ".join(f"version {v} ({records(n)})" for v, n in sorted(self.missing.items()))
        super().__init__(f"the master key source lacks {said} that the database uses: restore the key file "
                         "(or STRONGROOM_MASTER_KEYS), or the HSM token's or AWS KMS's key, that holds it; nothing "
                         "sealed under it can be opened until then")


def _unavailable(exc: KeySourceUnavailable) -> ServiceUnavailable:
    """An HSM or KMS that does not answer is a 503 with Retry-After, like a database that does not."""
    log.warning("master key source unavailable: %s", exc)
    return ServiceUnavailable("the master key source (HSM or KMS) does not answer; try again shortly", retry_after=5)


class Vault:
    """Seals, opens and re-wraps every registered secret (:data:`SEALED_TABLES`)."""

    def __init__(self, db: Database, envelope: Envelope) -> None:
        self.db = db
        self.envelope = envelope

    # --- any registered table -----------------------------------------------------------------

    def seal(self, table: SealedTable, row: Any, fields: Mapping[str, str]) -> dict[str, Any]:
        """Return ``{column: value}`` of ``table``'s sealed columns holding ``fields`` under a new data key.

        ``row`` gives the AAD's columns (``table.identity``; e.g. ``public_id`` must already be set).
        The values are to be written together, in the same statement.
        """
        try:
            sealed = self.envelope.seal(json.dumps(dict(fields), sort_keys=True).encode(), table.aad(row))
        except KeySourceUnavailable as exc:
            raise _unavailable(exc) from None
        return table.columns(sealed)

    def open(self, table: SealedTable, row: Any) -> dict[str, str]:
        """Return the secret fields ``row`` of ``table`` holds (internal use only; never returned to a client).

        Raises DecryptionError (altered, moved, shredded, or no sealed secret) or KeyringError (its
        master key version is gone).
        """
        sealed = table.sealed_of(row)
        if sealed is None:
            raise DecryptionError(f"this {table.label} holds no sealed secret")
        try:
            fields: dict[str, str] = json.loads(self.envelope.open(sealed, table.aad(row)))
        except KeySourceUnavailable as exc:
            raise _unavailable(exc) from None
        except ValueError:
            raise DecryptionError(f"this {table.label}'s secret is not a JSON object") from None
        return fields

    def _open_or_refuse(self, table: SealedTable, row: Any, what: str, refusal: str) -> dict[str, str]:
        """:meth:`open`, raising CredentialsUnreadable (logging ``what``, never a secret) if it does not open."""
        try:
            return self.open(table, row)
        except (DecryptionError, KeyringError):
            log.error("stored %s cannot be decrypted", what)
            raise CredentialsUnreadable(refusal) from None

    # --- named shortcuts of the services ------------------------------------------------------

    def seal_account_credentials(self, account: AccountIdentity, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Return the sealed columns of ``account`` holding ``credentials`` (see :meth:`seal`)."""
        return self.seal(EXCHANGE_ACCOUNTS, account, credentials)

    def open_account_credentials(self, account: ExchangeAccount) -> dict[str, str]:
        """Return an account's decrypted credentials. Raises CredentialsUnreadable if they do not open."""
        return self._open_or_refuse(EXCHANGE_ACCOUNTS, account, f"credentials of account {account.id}",
                                    "the stored credentials cannot be decrypted; rotate them to store new ones")

    def seal_credential(self, credential: AccountIdentity, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Return the sealed columns of a stored credential holding ``credentials`` (see :meth:`seal`)."""
        return self.seal(EXCHANGE_CREDENTIALS, credential, credentials)

    def open_credential(self, credential: ExchangeCredential) -> dict[str, str]:
        """Return a stored credential's decrypted fields. Raises CredentialsUnreadable if they do not open."""
        return self._open_or_refuse(EXCHANGE_CREDENTIALS, credential, f"credential {credential.id}",
                                    "the stored credential cannot be decrypted; rotate it to store new keys")

    def seal_key_secret(self, key: KeyIdentity, doc: Mapping[str, str]) -> dict[str, Any]:
        """Return the sealed columns of an HMAC key holding ``doc`` (``{"current": s, "previous": s?}``)."""
        return self.seal(API_KEYS, key, doc)

    def open_key_secret(self, key: ApiKey) -> dict[str, str]:
        """Return an HMAC key's decrypted secrets ``{"current": s, "previous": s?}``.

        Raises DecryptionError (altered, moved, no secret) or KeyringError (master key version gone).
        """
        return self.open(API_KEYS, key)

    def seal_webhook_secrets(self, endpoint: WebhookIdentity, doc: Mapping[str, str]) -> dict[str, Any]:
        """Return the sealed columns of a webhook endpoint holding ``doc`` (``{"current": s, "previous": s?}``)."""
        return self.seal(WEBHOOK_ENDPOINTS, endpoint, doc)

    def open_webhook_secrets(self, endpoint: Any) -> dict[str, str]:
        """Return a webhook endpoint's signing secrets ``{"current": s, "previous": s?}`` (never shown again).

        Raises DecryptionError (altered, moved) or KeyringError (master key version gone).
        """
        return self.open(WEBHOOK_ENDPOINTS, endpoint)

    # --- master key versions ------------------------------------------------------------------

    def usage(self) -> dict[int, int]:
        """Return ``{version: live records sealed under it}`` over every registered table."""
        counts: dict[int, int] = {}
        with self.db.session() as session:
            for sealed in SEALED_TABLES:
                table = sealed.table
                version = table.c[sealed.version]
                rows = session.execute(select(version, func.count()).where(sealed.live(table), version.is_not(None))
                                       .group_by(version)).tuples()
                for v, n in rows:
                    counts[v] = counts.get(v, 0) + n
        return counts

    def pending(self) -> int:
        """Return how many live records are wrapped under an older master key version than the current one."""
        current = self.envelope.keys.current_version
        return sum(n for v, n in self.usage().items() if v < current)

    def missing_versions(self) -> dict[int, int]:
        """Return ``{version: records}`` for versions records use that the key source does not hold."""
        held = set(self.envelope.keys.versions())
        return {v: n for v, n in sorted(self.usage().items()) if v not in held}

    def check_key_source(self) -> None:
        """Raise KeySourceIncomplete if any record is sealed under a version the key source lacks
        (a key file older than the data: restored from an old backup, or the wrong one)."""
        missing = self.missing_versions()
        if missing:
            raise KeySourceIncomplete(missing)

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
            seen = written = 0
            with self.db.session() as session:
                for sealed in SEALED_TABLES:
                    seen, written = self._rewrap_batch(session, sealed, current, batch)
                    if seen:
                        break
            if not seen:
                return done
            done += written
            if progress and written:
                progress(done)

    def _rewrap_batch(self, session: Session, sealed: SealedTable, current: int, batch: int) -> tuple[int, int]:
        """Re-wrap one batch of ``sealed``'s live rows under an older version, each a compare-and-set on
        the values read. Returns ``(rows read, rows written)``."""
        table = sealed.table
        c = table.c
        rows = session.execute(
            select(c.id, *(c[name] for name in sealed.identity), c[sealed.ciphertext], c[sealed.nonce],
                   c[sealed.wrapped_dek], c[sealed.version])
            .where(c[sealed.version] < current, sealed.live(table))
            .order_by(c.id).limit(batch)
        ).all()
        written = 0
        for row in rows:
            old = sealed.sealed_of(row)
            if old is None:  # never: live rows hold a secret
                continue
            new = self.envelope.rewrap(old, sealed.aad(row))
            written += rowcount(session.execute(
                update(table)
                .where(c.id == row.id, c[sealed.wrapped_dek] == old.wrapped_dek, c[sealed.nonce] == old.nonce,
                       c[sealed.version] == old.kek_version)
                # updated_at set to itself: a re-wrap is not a change of the record
                .values({sealed.wrapped_dek: new.wrapped_dek, sealed.version: new.kek_version,
                         "updated_at": c.updated_at})
            ))
        return len(rows), written
