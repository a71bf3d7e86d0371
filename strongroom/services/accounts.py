"""Exchange accounts: connect (checked live, stored encrypted), list, rename, rotate, status changes."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text

from strongroom.crypto.envelope import DecryptionError, Envelope, Sealed
from strongroom.crypto.keyring import KeyringError
from strongroom.crypto.tokens import Hasher, hint
from strongroom.db import Database, utcnow
from strongroom.enums import AccountStatus
from strongroom.errors import (
    AccountExists,
    AlreadyConnected,
    Conflict,
    CredentialsUnreadable,
    ExchangeUnavailable,
    Forbidden,
    InvalidCredentials,
    NotFound,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo
from strongroom.models import ExchangeAccount, User
from strongroom.pagination import Page, paginate, valid_id
from strongroom.principal import Principal
from strongroom.services.audit import AuditService
from strongroom.settings import Settings

log = logging.getLogger("strongroom.accounts")

STATUSES = ("active", "disabled", "invalid", "unverified", "disconnected")
LIVE = ("active", "disabled", "invalid", "unverified")

# validate(info, credentials, settings) -> outcome with .verified and .can_withdraw
Validator = Callable[[ExchangeInfo, dict[str, str], Settings], Any]


def account_aad(account: ExchangeAccount) -> bytes:
    """The AAD binding a ciphertext to its row: account, user and exchange."""
    return f"exchange-account|{account.public_id}|{account.user_id}|{account.exchange}".encode()


def sealed_of(account: ExchangeAccount) -> Sealed:
    return Sealed(account.ciphertext, account.nonce, account.wrapped_dek, account.kek_version)


def primary_credential(info: ExchangeInfo, credentials: dict[str, str]) -> str:
    """The credential that identifies an exchange key: api_key, or the first required field."""
    for name in ("api_key", *info.credentials):
        if credentials.get(name):
            return credentials[name]
    raise ValidationFailed("credentials are empty", fields={"credentials": "required"})


class ExchangeAccountService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        audit: AuditService,
        envelope: Envelope,
        hasher: Hasher,
        catalogue: Catalogue,
        validator: Validator,
    ) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.envelope = envelope
        self.hasher = hasher
        self.catalogue = catalogue
        self.validator = validator

    # --- helpers ----------------------------------------------------------------------------

    def resolve_exchange(self, name: str) -> ExchangeInfo:
        """Return the catalogue entry for an id or alias; raise ValidationFailed naming ``exchange``."""
        try:
            return self.catalogue.get(name)
        except NotFound:
            raise ValidationFailed("unknown exchange", fields={"exchange": "unknown exchange"}) from None

    def _check_live(self, info: ExchangeInfo, credentials: dict[str, str], principal: Principal, action: str,
                    target: str | None) -> str:
        """Validate against the exchange; return the status to store. Refusals are audited and raised."""
        try:
            outcome = self.validator(info, credentials, self.settings)
        except (InvalidCredentials, ExchangeUnavailable) as exc:
            self.audit.record_now(action, "refused", principal=principal, target=target,
                                  details={"exchange": info.id, "reason": exc.code})
            raise
        if outcome.can_withdraw and not self.settings.allow_withdrawal_keys:
            self.audit.record_now(action, "refused", principal=principal, target=target,
                                  details={"exchange": info.id, "reason": "withdrawal_permission"})
            raise WithdrawalPermission(
                "this key can withdraw funds; create a key without withdrawal permission "
                "(or the operator may set STRONGROOM_ALLOW_WITHDRAWAL_KEYS)"
            )
        return "active" if outcome.verified else "unverified"

    def _duplicate(self, session, fingerprint: str, exclude_id: int | None = None) -> bool:
        query = select(ExchangeAccount.id).where(
            ExchangeAccount.key_fingerprint == fingerprint, ExchangeAccount.status.in_(LIVE)
        )
        if exclude_id is not None:
            query = query.where(ExchangeAccount.id != exclude_id)
        return session.scalar(query.limit(1)) is not None

    def _seal(self, account: ExchangeAccount, credentials: dict[str, str]) -> None:
        sealed = self.envelope.seal(json.dumps(credentials, sort_keys=True).encode(), account_aad(account))
        account.ciphertext, account.nonce = sealed.ciphertext, sealed.nonce
        account.wrapped_dek, account.kek_version = sealed.wrapped_dek, sealed.kek_version

    def credentials_of(self, account: ExchangeAccount) -> dict[str, str]:
        """Decrypt and return an account's credentials (internal use only; never returned).

        Raises CredentialsUnreadable if the stored record was altered, moved or its master key is gone.
        """
        try:
            return json.loads(self.envelope.open(sealed_of(account), account_aad(account)))
        except (DecryptionError, KeyringError):
            log.error("stored credentials of account %s do not decrypt", account.id)
            raise CredentialsUnreadable(
                "the stored credentials cannot be decrypted; rotate them to store new ones") from None

    def _owned(self, session, principal: Principal, account_id: int, *, for_update: bool = False) -> ExchangeAccount:
        if not valid_id(account_id):
            raise NotFound("exchange account not found")
        query = select(ExchangeAccount).where(ExchangeAccount.id == account_id)
        if for_update and session.bind.dialect.name == "postgresql":
            query = query.with_for_update()
        account = session.scalar(query)
        if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
            raise NotFound("exchange account not found")
        return account

    # --- operations ---------------------------------------------------------------------------

    def authorize_connect(self, principal: Principal, user_id: int | None = None) -> int:
        """Return the owner a connect by ``principal`` would be for, or raise.

        Raises InsufficientScope (no ``write``), Forbidden (another user and not an admin, or a
        key bound to accounts). Surfaces that must answer 401/403 before reading a body call it first.
        """
        principal.require("write")
        owner = principal.user_id if user_id is None else user_id
        if not principal.acts_for(owner):
            raise Forbidden("you do not have permission to perform this action")
        if principal.account_ids is not None:
            raise Forbidden("a key bound to accounts cannot connect new accounts")
        return owner

    def connect(
        self,
        principal: Principal,
        exchange: str,
        credentials: dict[str, Any],
        *,
        name: str | None = None,
        account_type: str | None = None,
        user_id: int | None = None,
        one_per_exchange: bool = False,
    ) -> ExchangeAccount:
        """Check credentials with the exchange, then store them encrypted.

        Returns the new account (status ``active``, or ``unverified`` for venues without a validator).
        Raises ValidationFailed (unknown exchange, fields), Forbidden (other user, bound key),
        Conflict (key already connected; or, with ``one_per_exchange``, a live account on that
        exchange), InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing stored).
        """
        owner = self.authorize_connect(principal, user_id)
        self._user_exists(owner)
        info = self.resolve_exchange(exchange)
        creds = self.catalogue.check_credentials(info, credentials)
        account_type = account_type or (info.account_types[0] if info.account_types else "spot")
        if account_type not in info.account_types:
            raise ValidationFailed("unsupported account type",
                                   fields={"account_type": f"one of {', '.join(info.account_types)}"})
        name = (name or f"{info.name} {account_type}").strip()
        if not 1 <= len(name) <= 100:
            raise ValidationFailed("invalid name", fields={"name": "1-100 characters"})
        fingerprint = self.hasher.fingerprint(info.id, primary_credential(info, creds))
        self._refuse_duplicates(principal, info, owner, fingerprint, one_per_exchange)
        status = self._check_live(info, creds, principal, "account.connect", None)
        account = ExchangeAccount(
            public_id=uuid.uuid4(),
            user_id=owner,
            exchange=info.id,
            name=name,
            account_type=account_type,
            status=status,
            key_fingerprint=fingerprint,
            key_hint=hint(primary_credential(info, creds)),
            validated_at=utcnow() if status == "active" else None,
            validation_result="valid" if status == "active" else "no_validator",
        )
        self._seal(account, creds)
        with self.db.session() as session:
            # checked again inside the transaction, under a lock: two racing connects of one key,
            # or (one_per_exchange) of one user on one exchange, must not both succeed
            self._lock_for_connect(session, owner, fingerprint)
            if one_per_exchange and self._live_on_exchange(session, owner, info.id):
                raise AccountExists("account for that exchange already exists")
            if self._duplicate(session, fingerprint):
                raise AlreadyConnected("this exchange API key is already connected")
            session.add(account)
            session.flush()
            self.audit.record(session, "account.connect", "ok", principal=principal, target=f"account:{account.id}",
                              details={"exchange": info.id, "status": status, "user_id": owner})
        return account

    @staticmethod
    def _lock_for_connect(session, owner: int, fingerprint: str) -> None:
        """Serialize, until the transaction ends, connects of ``owner`` and of one exchange key.

        PostgreSQL: transaction-scoped advisory locks (user first, then key: one order, no deadlock).
        SQLite: a no-op write takes the database's write lock, so the checks that follow and the
        insert are one atomic step.
        """
        if session.bind.dialect.name == "postgresql":
            for name in (f"user:{owner}", f"key:{fingerprint}"):
                digest = hashlib.sha256(f"strongroom.account.connect|{name}".encode()).digest()
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                {"k": int.from_bytes(digest[:8], "big", signed=True)})
        else:
            session.execute(text("UPDATE users SET username = username WHERE id = :id"), {"id": owner})

    def _refuse_duplicates(self, principal, info, owner, fingerprint, one_per_exchange) -> None:
        with self.db.session() as session:
            reason = None
            if one_per_exchange and self._live_on_exchange(session, owner, info.id):
                reason = "account_for_exchange_exists"
            elif self._duplicate(session, fingerprint):
                reason = "duplicate_key"
        if reason:
            self.audit.record_now("account.connect", "refused", principal=principal,
                                  details={"exchange": info.id, "reason": reason})
            if reason == "duplicate_key":
                raise AlreadyConnected("this exchange API key is already connected")
            raise AccountExists("account for that exchange already exists")

    def _user_exists(self, user_id: int) -> None:
        if not valid_id(user_id):  # beyond the integer column: PostgreSQL DataError, SQLite OverflowError
            raise NotFound("user not found")
        with self.db.session() as session:
            if session.get(User, user_id) is None:
                raise NotFound("user not found")

    def _live_on_exchange(self, session, user_id: int, exchange: str) -> ExchangeAccount | None:
        return session.scalar(
            select(ExchangeAccount).where(
                ExchangeAccount.user_id == user_id,
                ExchangeAccount.exchange == exchange,
                ExchangeAccount.status.in_(LIVE),
            ).order_by(ExchangeAccount.id).limit(1)
        )

    def list(
        self,
        principal: Principal,
        *,
        user_id: int | None = None,
        exchange: str | None = None,
        status: str | None = None,
        live_only: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[ExchangeAccount]:
        """Return a page of a user's accounts that the principal may see.

        Raises Forbidden (another user's, not an admin), NotFound (no such user), ValidationFailed.
        """
        principal.require("read")
        owner = principal.user_id if user_id is None else user_id
        if not principal.acts_for(owner):
            raise Forbidden("you do not have permission to perform this action")
        if owner != principal.user_id:
            self._user_exists(owner)
        query = select(ExchangeAccount).where(ExchangeAccount.user_id == owner)
        if live_only:
            query = query.where(ExchangeAccount.status.in_(LIVE))
        if exchange:
            query = query.where(ExchangeAccount.exchange == self.resolve_exchange(exchange).id)
        if status:
            if status not in STATUSES:
                raise ValidationFailed("invalid status", fields={"status": f"one of {', '.join(STATUSES)}"})
            query = query.where(ExchangeAccount.status == status)
        if principal.account_ids is not None:
            query = query.where(ExchangeAccount.id.in_(sorted(principal.account_ids) or [-1]))
        with self.db.session() as session:
            return paginate(session, query, ExchangeAccount.id, cursor, limit)

    def list_any(self, principal: Principal, *, user_id: int | None = None, status: str | None = None,
                 cursor: str | None = None, limit: int = 50) -> Page[ExchangeAccount]:
        """Admins (the operator's command line): a page of every user's accounts, or ``user_id``'s.

        Raises Forbidden (not an admin), ValidationFailed (status, cursor, limit).
        """
        principal.require("read")
        if not principal.is_admin:
            raise Forbidden("you do not have permission to perform this action")
        query = select(ExchangeAccount)
        if user_id is not None:
            query = query.where(ExchangeAccount.user_id == user_id)
        if status:
            if status not in set(AccountStatus):
                raise ValidationFailed("invalid status", fields={"status": f"one of {', '.join(AccountStatus)}"})
            query = query.where(ExchangeAccount.status == status)
        with self.db.session() as session:
            return paginate(session, query, ExchangeAccount.id, cursor, limit)

    def get(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Return one account; NotFound if it is not the principal's to see."""
        principal.require("read")
        with self.db.session() as session:
            return self._owned(session, principal, account_id)

    def disconnect_on_exchange(self, principal: Principal, user_id: int, exchange: str) -> ExchangeAccount:
        """Disconnect ``user_id``'s live account on ``exchange`` (an id or alias).

        Raises Forbidden (another user's, not an admin), NotFound (no such user or account).
        """
        principal.require("delete")
        if not principal.acts_for(user_id):
            raise Forbidden("you do not have permission to perform this action")
        if user_id != principal.user_id:
            self._user_exists(user_id)
        try:
            info = self.catalogue.get(exchange)
        except NotFound:
            raise NotFound("exchange account not found") from None
        with self.db.session() as session:
            account = self._live_on_exchange(session, user_id, info.id)
            if account is None or not principal.sees_account(account.id):
                raise NotFound("exchange account not found")
            account_id = account.id
        return self.disconnect(principal, account_id)

    def rename(self, principal: Principal, account_id: int, name: str) -> ExchangeAccount:
        """Rename an account. Raises NotFound, ValidationFailed, Conflict (disconnected)."""
        principal.require("write")
        name = (name or "").strip()
        if not 1 <= len(name) <= 100:
            raise ValidationFailed("invalid name", fields={"name": "1-100 characters"})
        with self.db.session() as session:
            account = self._owned(session, principal, account_id, for_update=True)
            self._not_disconnected(account)
            old = account.name
            account.name = name
            self.audit.record(session, "account.rename", "ok", principal=principal, target=f"account:{account.id}",
                              details={"from": old, "to": name})
            return account

    def rotate(self, principal: Principal, account_id: int, credentials: dict[str, Any]) -> ExchangeAccount:
        """Replace an account's credentials. The new ones are checked first; the old ones stay until they pass.

        Raises NotFound, Conflict, ValidationFailed, InvalidCredentials, WithdrawalPermission,
        ExchangeUnavailable.
        """
        principal.require("write")
        account = self.get(principal, account_id)
        self._not_disconnected(account)
        info = self.catalogue.get(account.exchange)
        creds = self.catalogue.check_credentials(info, credentials)
        fingerprint = self.hasher.fingerprint(info.id, primary_credential(info, creds))
        with self.db.session() as session:
            if self._duplicate(session, fingerprint, exclude_id=account.id):
                raise AlreadyConnected("this exchange API key is already connected")
        status = self._check_live(info, creds, principal, "account.rotate", f"account:{account.id}")
        with self.db.session() as session:
            self._lock_for_connect(session, account.user_id, fingerprint)  # vs. a racing connect/rotate of this key
            account = self._owned(session, principal, account_id, for_update=True)
            self._not_disconnected(account)
            if self._duplicate(session, fingerprint, exclude_id=account.id):
                raise AlreadyConnected("this exchange API key is already connected")
            self._seal(account, creds)
            account.key_fingerprint = fingerprint
            account.key_hint = hint(primary_credential(info, creds))
            if account.status != "disabled":
                account.status = status
            account.validated_at = utcnow() if status == "active" else account.validated_at
            account.validation_result = "valid" if status == "active" else "no_validator"
            self.audit.record(session, "account.rotate", "ok", principal=principal, target=f"account:{account.id}",
                              details={"exchange": info.id, "status": account.status})
            return account

    def revalidate(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Check stored credentials again. Invalid ones mark the account ``invalid`` (returned, not raised).

        Raises NotFound, Conflict (disconnected), ExchangeUnavailable (nothing changes).
        """
        principal.require("write")
        account = self.get(principal, account_id)
        self._not_disconnected(account)
        info = self.catalogue.get(account.exchange)
        creds = self.credentials_of(account)
        result = "valid"
        try:
            outcome = self.validator(info, creds, self.settings)
            if not outcome.verified:
                result = "no_validator"
            elif outcome.can_withdraw and not self.settings.allow_withdrawal_keys:
                result = "withdrawal_permission"
        except InvalidCredentials:
            result = "invalid_credentials"
        except ExchangeUnavailable:
            self.audit.record_now("account.revalidate", "refused", principal=principal,
                                  target=f"account:{account.id}", details={"reason": "exchange_unavailable"})
            raise
        with self.db.session() as session:
            account = self._owned(session, principal, account_id, for_update=True)
            self._not_disconnected(account)
            if account.status != "disabled":
                account.status = {"valid": "active", "no_validator": "unverified"}.get(result, "invalid")
            account.validated_at = utcnow()
            account.validation_result = result
            self.audit.record(session, "account.revalidate", "ok", principal=principal,
                              target=f"account:{account.id}", details={"result": result, "status": account.status})
            return account

    def set_enabled(self, principal: Principal, account_id: int, enabled: bool) -> ExchangeAccount:
        """Disable a live account, or enable a disabled one. Raises NotFound, Conflict."""
        principal.require("write")
        with self.db.session() as session:
            account = self._owned(session, principal, account_id, for_update=True)
            self._not_disconnected(account)
            before = account.status
            if enabled:
                if account.status == "disabled":
                    account.status = {"valid": "active", "no_validator": "unverified"}.get(
                        account.validation_result or "", "invalid")
            elif account.status != "disabled":
                account.status = "disabled"
            self.audit.record(session, "account.enable" if enabled else "account.disable", "ok",
                              principal=principal, target=f"account:{account.id}",
                              details={"from": before, "to": account.status})
            return account

    def disconnect(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Disconnect (terminal): the credentials are destroyed, the row is kept for history.

        The same exchange key may be connected again afterwards. Raises NotFound, Conflict.
        """
        principal.require("delete")
        with self.db.session() as session:
            account = self._owned(session, principal, account_id, for_update=True)
            self._not_disconnected(account)
            self._shred(account)
            self.audit.record(session, "account.disconnect", "ok", principal=principal,
                              target=f"account:{account.id}", details={"exchange": account.exchange})
            return account

    def _shred(self, account: ExchangeAccount) -> None:
        account.status = "disconnected"
        account.disconnected_at = utcnow()
        account.ciphertext = account.nonce = account.wrapped_dek = b""

    @staticmethod
    def _not_disconnected(account: ExchangeAccount) -> None:
        if account.status == "disconnected":
            raise Conflict("this account is disconnected")

    def owned_ids(self, user_id: int, ids: list[int]) -> set[int]:
        """Return those of ``ids`` that are live accounts of ``user_id``."""
        ids = [i for i in ids if valid_id(i)]
        if not ids:
            return set()
        with self.db.session() as session:
            rows = session.scalars(select(ExchangeAccount.id).where(
                ExchangeAccount.user_id == user_id, ExchangeAccount.id.in_(ids), ExchangeAccount.status.in_(LIVE)))
            return set(rows)


