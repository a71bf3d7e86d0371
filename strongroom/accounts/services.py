"""Exchange accounts: connect (checked live, stored encrypted), list, rename, rotate, status changes.

Every state change is a conditional UPDATE on the state it was decided from (``WHERE status ...``,
``WHERE name = <read>``): it takes effect exactly once on both databases, whatever runs at the same
time (a row lock is a no-op on SQLite). A step whose row changed in between is decided again.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, overload

import anyio.to_thread
from sqlalchemy import ColumnElement, case, or_, select, text, update
from sqlalchemy.orm import Session

from strongroom.accounts import events as account_events
from strongroom.accounts.interfaces import AccountQuery, ByCursor, ByOffset, ConnectPolicy
from strongroom.audit.services import AuditService
from strongroom.crypto.tokens import Hasher, hint
from strongroom.db import Database, utcnow
from strongroom.enums import LIVE_STATUSES, AccountStatus
from strongroom.errors import (
    AccountExists,
    AlreadyConnected,
    Conflict,
    DomainError,
    ExchangeUnavailable,
    Forbidden,
    InvalidCredentials,
    NotFound,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo
from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.models import ExchangeAccount, User
from strongroom.pagination import OffsetPage, Page, paginate, paginate_offset, valid_id
from strongroom.principal import SYSTEM, Principal
from strongroom.scopes import DELETE, READ, WRITE
from strongroom.settings import Settings
from strongroom.vault.services import Vault

log = logging.getLogger("strongroom.accounts")

STATUSES = tuple(AccountStatus)
LIVE = tuple(sorted(LIVE_STATUSES))  # every status whose account still holds credentials
# the status a check's validation_result puts an enabled account in
STATUS_OF_RESULT = {"valid": AccountStatus.ACTIVE, "no_validator": AccountStatus.UNVERIFIED,
                    "withdrawal_permission": AccountStatus.SUSPENDED}

T = TypeVar("T")
# How often a state change is decided again when its row changed under it before giving up (409).
# Each retry means another request changed the row in the meantime, so this is never reached in practice.
CHANGE_ATTEMPTS = 8
DISCONNECTED = AccountStatus.DISCONNECTED
DISABLED = AccountStatus.DISABLED


class CredentialChecker(Protocol):
    """What the service needs of the exchange gateway (``strongroom.exchanges.gateway.ExchangeGateway``)."""

    async def validate(self, info: ExchangeInfo, credentials: Mapping[str, str]) -> ValidationOutcome:
        """Return the live check's outcome; raise InvalidCredentials or ExchangeUnavailable (see the gateway)."""
        ...


@dataclass(frozen=True)
class _ConnectPlan:
    """A connect that passed every check that needs no exchange call."""

    owner: int
    info: ExchangeInfo
    credentials: dict[str, str]
    account_type: str
    name: str
    fingerprint: str


# Runs inside the transaction that inserts a connected account (the account has its id): see ``connect``.
InsertHook = Callable[[Session, ExchangeAccount], None]


class _RowChanged(Exception):
    """The row no longer holds the state a change was decided from (its conditional UPDATE matched nothing)."""


def primary_credential(info: ExchangeInfo, credentials: dict[str, str]) -> str:
    """The credential that identifies an exchange key: api_key, or the first required field."""
    for name in ("api_key", *info.credentials):
        if credentials.get(name):
            return credentials[name]
    raise ValidationFailed("credentials are empty", fields={"credentials": "required"})


def authorize_connect(principal: Principal, user_id: int | None = None) -> int:
    """Return the owner a connect by ``principal`` would be for (``user_id``, default its own), or raise.

    Raises InsufficientScope (no ``write``), Forbidden (another user and not an admin, or a key bound to
    accounts). Needs no database: surfaces that must answer 401/403 before reading a body call it first
    (as a route guard).
    """
    principal.require(WRITE)
    owner = principal.user_id if user_id is None else user_id
    if not principal.acts_for(owner):
        raise Forbidden("you do not have permission to perform this action")
    if principal.account_ids is not None:
        raise Forbidden("a key bound to accounts cannot connect new accounts")
    return owner


class ExchangeAccountService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        audit: AuditService,
        vault: Vault,
        hasher: Hasher,
        catalogue: Catalogue,
        gateway: CredentialChecker,
    ) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.vault = vault
        self.hasher = hasher
        self.catalogue = catalogue
        self.gateway = gateway

    # --- helpers ----------------------------------------------------------------------------

    def resolve_exchange(self, name: str) -> ExchangeInfo:
        """Return the catalogue entry for an id or alias; raise ValidationFailed naming ``exchange``."""
        try:
            return self.catalogue.get(name)
        except NotFound as exc:
            raise ValidationFailed(exc.message, fields={"exchange": exc.message}) from None

    async def check_live(self, info: ExchangeInfo, credentials: dict[str, str], principal: Principal, action: str,
                         target: str | None) -> str:
        """Validate against the exchange (awaited on the event loop); return the status to store.

        Refusals (InvalidCredentials, ExchangeUnavailable, WithdrawalPermission) are audited and raised;
        InvalidCredentials and WithdrawalPermission carry the venue's id as ``details["exchange"]``.
        """
        try:
            outcome = await self.gateway.validate(info, credentials)
        except InvalidCredentials as exc:
            await self._audit_refusal(action, principal, target, {"exchange": info.id, "reason": exc.code})
            raise InvalidCredentials(exc.message, details={"exchange": info.id}) from None
        except ExchangeUnavailable as exc:
            await self._audit_refusal(action, principal, target, {"exchange": info.id, "reason": exc.code})
            raise
        if outcome.can_withdraw and not self.settings.allow_withdrawal_keys:
            await self._audit_refusal(action, principal, target,
                                      {"exchange": info.id, "reason": "withdrawal_permission"})
            raise WithdrawalPermission(
                "this key can withdraw funds; create a key without withdrawal permission "
                "(or the operator may set STRONGROOM_ALLOW_WITHDRAWAL_KEYS)", details={"exchange": info.id}
            )
        return AccountStatus.ACTIVE if outcome.verified else AccountStatus.UNVERIFIED

    async def _audit_refusal(self, action: str, principal: Principal, target: str | None,
                             details: dict[str, Any]) -> None:
        await anyio.to_thread.run_sync(functools.partial(
            self.audit.record_now, action, "refused", principal=principal, target=target, details=details))

    @staticmethod
    def duplicate(session: Session, fingerprint: str, owner: int, account_type: str,
                  exclude: Collection[int] = ()) -> bool:
        """Return True if the exchange key ``fingerprint`` may not be live in an ``account_type`` account of ``owner``.

        An exchange key belongs to one user: it is a duplicate if a live account (other than those in
        ``exclude``) of another user holds it, or one of ``owner``'s own of the same account type
        (one key may serve a user's spot and margin accounts, as Cadenza connects them).
        """
        query = select(ExchangeAccount.id).where(
            ExchangeAccount.key_fingerprint == fingerprint, ExchangeAccount.status.in_(LIVE),
            or_(ExchangeAccount.user_id != owner, ExchangeAccount.account_type == account_type),
        )
        if exclude:
            query = query.where(ExchangeAccount.id.not_in(sorted(exclude)))
        return session.scalar(query.limit(1)) is not None

    def credentials_of(self, account: ExchangeAccount) -> dict[str, str]:
        """Decrypt and return an account's credentials (internal use only; never returned).

        Raises CredentialsUnreadable if the stored record was altered, moved or its master key is gone.
        """
        return self.vault.open_account_credentials(account)

    def _owned(self, session: Session, principal: Principal, account_id: int, *, claim: bool = False) -> ExchangeAccount:
        """Return the account if the principal may see it; raise NotFound otherwise.

        With ``claim``, the row's write lock is taken first (a no-op UPDATE: the row lock on PostgreSQL,
        the database's write lock on SQLite), so that what is read cannot change before the transaction
        ends and a change decided from it does not have to be decided again. The conditional UPDATE
        that follows stays the guard; the claim only spares retries.
        """
        if not valid_id(account_id):
            raise NotFound("exchange account not found")
        if claim:
            session.execute(text("UPDATE exchange_accounts SET status = status WHERE id = :id"), {"id": account_id})
        account = session.scalar(select(ExchangeAccount).where(ExchangeAccount.id == account_id)
                                 .execution_options(populate_existing=True))
        if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
            raise NotFound("exchange account not found")
        return account

    @staticmethod
    def _change(session: Session, account: ExchangeAccount, *conditions: ColumnElement[bool],
                **values: Any) -> ExchangeAccount | None:
        """Apply ``values`` to ``account``'s row if it is not disconnected and ``conditions`` hold.

        Returns the row as written (``account`` refreshed), or None if nothing matched.
        """
        statement = (
            update(ExchangeAccount)
            .where(ExchangeAccount.id == account.id, ExchangeAccount.status != DISCONNECTED, *conditions)
            .values(**values)
            .returning(ExchangeAccount)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        return session.scalars(statement).first()

    def _decided_again(self, step: Callable[[Session], T]) -> T:
        """Run ``step`` in a transaction; run it again (a few times) while it raises _RowChanged.

        Returns what ``step`` returns. Raises what it raises, or Conflict if the row kept changing.
        """
        for _ in range(CHANGE_ATTEMPTS):
            try:
                with self.db.session() as session:
                    return step(session)
            except _RowChanged:
                continue
        raise Conflict("the account was changed by another request at the same time; try again")

    @staticmethod
    def valid_name(name: str | None) -> str:
        """Return an account name stripped of surrounding blanks; raise ValidationFailed unless 1-100 characters."""
        name = name.strip() if isinstance(name, str) else ""
        if not 1 <= len(name) <= 100:
            raise ValidationFailed("invalid name", fields={"name": "1-100 characters"})
        return name

    # --- operations ---------------------------------------------------------------------------

    def authorize_connect(self, principal: Principal, user_id: int | None = None) -> int:
        """Return the owner a connect by ``principal`` would be for, or raise (see :func:`authorize_connect`)."""
        return authorize_connect(principal, user_id)

    async def connect(
        self,
        principal: Principal,
        exchange: str,
        credentials: dict[str, Any],
        *,
        name: str | None = None,
        account_type: str | None = None,
        user_id: int | None = None,
        one_per_exchange: bool = False,
        on_insert: InsertHook | None = None,
    ) -> ExchangeAccount:
        """Check credentials with the exchange, then store them encrypted.

        Database work runs in worker threads; the exchange call is awaited on the event loop.
        Returns the new account (status ``active``, or ``unverified`` for venues without a validator).
        Raises ValidationFailed (unknown exchange, fields), Forbidden (other user, bound key),
        Conflict (key already connected; or, with ``one_per_exchange``, a live account on that
        exchange), InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing stored).
        ``on_insert(session, account)`` runs in the inserting transaction (see ``_store_connect``).
        """
        plan = await anyio.to_thread.run_sync(functools.partial(
            self._plan_connect, principal, exchange, credentials, name=name, account_type=account_type,
            user_id=user_id, one_per_exchange=one_per_exchange))
        status = await self.check_live(plan.info, plan.credentials, principal, "account.connect", None)
        return await anyio.to_thread.run_sync(self._store_connect, principal, plan, status, one_per_exchange,
                                              on_insert)

    def _plan_connect(
        self,
        principal: Principal,
        exchange: str,
        credentials: dict[str, Any],
        *,
        name: str | None,
        account_type: str | None,
        user_id: int | None,
        one_per_exchange: bool,
    ) -> _ConnectPlan:
        """Every check of ``connect`` that needs no exchange call and tells nothing about others' accounts.

        Whether the exchange key is already connected is not among them: that is answered only after
        the live check proved possession of its secret (``_store_connect``), so that a wrong secret is
        always InvalidCredentials (no existence oracle). ``one_per_exchange`` is: it is about the
        owner's own accounts (which the caller may list), whatever the key.
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
        if one_per_exchange:
            with self.db.session() as session:
                exists = self._live_on_exchange(session, owner, info.id) is not None
            if exists:
                self.audit.record_now("account.connect", "refused", principal=principal,
                                      details={"exchange": info.id, "reason": "account_for_exchange_exists"})
                raise AccountExists("account for that exchange already exists")
        return _ConnectPlan(owner, info, creds, account_type, name, fingerprint)

    def _store_connect(self, principal: Principal, plan: _ConnectPlan, status: str,
                       one_per_exchange: bool, on_insert: InsertHook | None = None) -> ExchangeAccount:
        """Insert the checked account (duplicates checked here, under a lock, after the live check); return it.

        ``on_insert(session, account)`` runs in the same transaction once the row has its id (and may
        raise to undo everything). Raises AccountExists, AlreadyConnected (audited as a refusal).
        """
        info, creds, owner, fingerprint = plan.info, plan.credentials, plan.owner, plan.fingerprint
        account = ExchangeAccount(
            public_id=uuid.uuid4(),
            user_id=owner,
            exchange=info.id,
            name=plan.name,
            account_type=plan.account_type,
            status=status,
            key_fingerprint=fingerprint,
            key_hint=hint(primary_credential(info, creds)),
            validated_at=utcnow() if status == AccountStatus.ACTIVE else None,
            validation_result="valid" if status == AccountStatus.ACTIVE else "no_validator",
        )
        for column, value in self.vault.seal_account_credentials(account, creds).items():
            setattr(account, column, value)
        try:
            with self.db.session() as session:
                # inside the transaction, under a lock: two racing connects of one key, or
                # (one_per_exchange) of one user on one exchange, must not both succeed
                self._lock_for_connect(session, owner, fingerprint)
                if one_per_exchange and self._live_on_exchange(session, owner, info.id):
                    raise AccountExists("account for that exchange already exists")
                if self.duplicate(session, fingerprint, owner, plan.account_type):
                    raise AlreadyConnected("this exchange API key is already connected")
                session.add(account)
                session.flush()
                if on_insert is not None:
                    on_insert(session, account)
                account_events.connected(session, account)
                self.audit.record(session, "account.connect", "ok", principal=principal,
                                  target=f"account:{account.id}",
                                  details={"exchange": info.id, "status": status, "user_id": owner})
        except AlreadyConnected:
            self.audit.record_now("account.connect", "refused", principal=principal,
                                  details={"exchange": info.id, "reason": "duplicate_key"})
            raise
        return account

    def lock_for_connect(self, session: Session, owner: int, fingerprint: str) -> None:
        """Serialize, until ``session``'s transaction ends, changes that bind this exchange key (see below)."""
        self._lock_for_connect(session, owner, fingerprint)

    @staticmethod
    def _lock_for_connect(session: Session, owner: int, fingerprint: str) -> None:
        """Serialize, until the transaction ends, connects of ``owner`` and of one exchange key.

        PostgreSQL: transaction-scoped advisory locks (user first, then key: one order, no deadlock).
        SQLite: a no-op write takes the database's write lock, so the checks that follow and the
        insert are one atomic step.
        """
        if session.get_bind().dialect.name == "postgresql":
            for name in (f"user:{owner}", f"key:{fingerprint}"):
                digest = hashlib.sha256(f"strongroom.account.connect|{name}".encode()).digest()
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                {"k": int.from_bytes(digest[:8], "big", signed=True)})
        else:
            session.execute(text("UPDATE users SET username = username WHERE id = :id"), {"id": owner})

    def _readable_owner(self, principal: Principal, user_id: int | None) -> int:
        """Return whose accounts ``principal`` lists: ``user_id`` (default its own).

        Raises InsufficientScope (no ``read``), Forbidden (another user's, not an admin), NotFound
        (no such user).
        """
        principal.require(READ)
        owner = principal.user_id if user_id is None else user_id
        if not principal.acts_for(owner):
            raise Forbidden("you do not have permission to perform this action")
        if owner != principal.user_id:
            self._user_exists(owner)
        return owner

    def _user_exists(self, user_id: int) -> None:
        if not valid_id(user_id):  # beyond the integer column: PostgreSQL DataError, SQLite OverflowError
            raise NotFound("user not found")
        with self.db.session() as session:
            if session.get(User, user_id) is None:
                raise NotFound("user not found")

    def _live_on_exchange(self, session: Session, user_id: int, exchange: str) -> ExchangeAccount | None:
        return session.scalar(
            select(ExchangeAccount).where(
                ExchangeAccount.user_id == user_id,
                ExchangeAccount.exchange == exchange,
                ExchangeAccount.status.in_(LIVE),
            ).order_by(ExchangeAccount.id).limit(1)
        )

    @overload
    def find(self, principal: Principal, query: AccountQuery, paging: ByCursor) -> Page[ExchangeAccount]: ...

    @overload
    def find(self, principal: Principal, query: AccountQuery, paging: ByOffset) -> OffsetPage[ExchangeAccount]: ...

    def find(self, principal: Principal, query: AccountQuery,
             paging: ByCursor | ByOffset) -> Page[ExchangeAccount] | OffsetPage[ExchangeAccount]:
        """Return one page (oldest first) of the accounts ``query`` selects that the principal may see.

        See ``interfaces.Accounts.find``: raises InsufficientScope, Forbidden, NotFound, ValidationFailed.
        """
        principal.require(READ)
        if query.everyone:
            if not principal.is_admin:
                raise Forbidden("you do not have permission to perform this action")
            select_ = select(ExchangeAccount)
            if query.user_id is not None:
                select_ = select_.where(ExchangeAccount.user_id == query.user_id)
        else:
            select_ = select(ExchangeAccount).where(
                ExchangeAccount.user_id == self._readable_owner(principal, query.user_id))
        select_ = select_.where(*self._conditions(query))
        if principal.account_ids is not None:
            select_ = select_.where(ExchangeAccount.id.in_(sorted(principal.account_ids) or [-1]))
        with self.db.session() as session:
            if isinstance(paging, ByOffset):
                return paginate_offset(session, select_, ExchangeAccount.id, paging.offset, paging.limit)
            return paginate(session, select_, ExchangeAccount.id, paging.cursor, paging.limit)

    def _conditions(self, query: AccountQuery) -> builtins.list[ColumnElement[bool]]:
        """The filters of ``query`` beyond whose accounts they are; raises ValidationFailed."""
        where: builtins.list[ColumnElement[bool]] = []
        info = self.resolve_exchange(query.exchange) if query.exchange else None
        if info is not None:
            where.append(ExchangeAccount.exchange == info.id)
        if query.statuses is not None:
            if set(query.statuses) - set(STATUSES):
                raise ValidationFailed("invalid status", fields={"status": f"one of {', '.join(STATUSES)}"})
            where.append(ExchangeAccount.status.in_(sorted(query.statuses) or [""]))
        if query.live_only:
            where.append(ExchangeAccount.status.in_(LIVE))
        if query.ids is not None:
            where.append(ExchangeAccount.id.in_(sorted(i for i in query.ids if valid_id(i)) or [-1]))
        if query.public_ids is not None:
            where.append(ExchangeAccount.public_id.in_(sorted(query.public_ids, key=str) or [uuid.UUID(int=0)]))
        if query.api_key is not None:
            if info is None:
                raise ValidationFailed("give the exchange of the API key", fields={"exchange": "required"})
            where.append(ExchangeAccount.key_fingerprint == self.hasher.fingerprint(info.id, query.api_key.strip()))
        if query.api_key_hint is not None:
            where.append(ExchangeAccount.key_hint == hint(query.api_key_hint.strip()))
        return where

    def get(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Return one account; NotFound if it is not the principal's to see."""
        principal.require(READ)
        with self.db.session() as session:
            return self._owned(session, principal, account_id)

    def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> ExchangeAccount:
        """Return the account whose stable UUID is ``public_id``; NotFound if it is not the principal's to see."""
        principal.require(READ)
        with self.db.session() as session:
            account = session.scalar(select(ExchangeAccount).where(ExchangeAccount.public_id == public_id))
        if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
            raise NotFound("exchange account not found")
        return account

    def disconnect_matching(self, principal: Principal, query: AccountQuery) -> ExchangeAccount:
        """Disconnect the oldest live account of ``query.user_id`` (default the principal's) that ``query``
        selects (an unknown exchange selects nothing); return it.

        Raises InsufficientScope (no ``delete``), Forbidden (another user's, not an admin), NotFound (no such
        user or account).
        """
        principal.require(DELETE)
        owner = principal.user_id if query.user_id is None else query.user_id
        if not principal.acts_for(owner):
            raise Forbidden("you do not have permission to perform this action")
        if owner != principal.user_id:
            self._user_exists(owner)
        try:
            where = self._conditions(replace(query, live_only=True))
        except ValidationFailed:
            raise NotFound("exchange account not found") from None

        def step(session: Session) -> ExchangeAccount:
            account = session.scalar(select(ExchangeAccount).where(ExchangeAccount.user_id == owner, *where)
                                     .order_by(ExchangeAccount.id).limit(1))
            if account is None or not principal.sees_account(account.id):
                raise NotFound("exchange account not found")
            if (done := self._disconnect(session, principal, account)) is None:
                raise _RowChanged  # disconnected meanwhile: look for a live one again (then: 404)
            return done

        return self._decided_again(step)

    def rename(self, principal: Principal, account_id: int, name: str) -> ExchangeAccount:
        """Rename an account. Raises NotFound, ValidationFailed, Conflict (disconnected)."""
        principal.require(WRITE)
        name = self.valid_name(name)

        def step(session: Session) -> ExchangeAccount:
            account = self._owned(session, principal, account_id, claim=True)
            self._not_disconnected(account)
            old = account.name
            if self._change(session, account, ExchangeAccount.name == old, name=name) is None:
                raise _RowChanged
            self.audit.record(session, "account.rename", "ok", principal=principal, target=f"account:{account.id}",
                              details={"from": old, "to": name})
            return account

        return self._decided_again(step)

    async def rotate(self, principal: Principal, account_id: int, credentials: dict[str, Any], *,
                     name: str | None = None) -> ExchangeAccount:
        """Replace an account's credentials (and, with ``name``, rename it in the same write). The new
        credentials are checked first; the old ones (and the old name) stay until they pass.

        Database work runs in worker threads; the exchange call is awaited on the event loop.
        Raises NotFound, Conflict, ValidationFailed, InvalidCredentials, WithdrawalPermission,
        ExchangeUnavailable.
        """
        name = None if name is None else self.valid_name(name)
        account, info, creds, fingerprint = await anyio.to_thread.run_sync(
            self._plan_rotate, principal, account_id, credentials)
        status = await self.check_live(info, creds, principal, "account.rotate", f"account:{account.id}")
        return await anyio.to_thread.run_sync(functools.partial(
            self._store_rotate, principal, account_id, account.user_id, info, creds, fingerprint, status, name=name))

    def _plan_rotate(self, principal: Principal, account_id: int,
                     credentials: dict[str, Any]) -> tuple[ExchangeAccount, ExchangeInfo, dict[str, str], str]:
        """Every check of ``rotate`` before the exchange call (none about other accounts: see ``_plan_connect``);
        return (account, venue, credentials, fingerprint)."""
        principal.require(WRITE)
        account = self.get(principal, account_id)
        self._not_disconnected(account)
        info = self.catalogue.get(account.exchange)
        creds = self.catalogue.check_credentials(info, credentials)
        # whether the new key is connected elsewhere is answered after the live check (``_store_rotate``)
        fingerprint = self.hasher.fingerprint(info.id, primary_credential(info, creds))
        return account, info, creds, fingerprint

    def _store_rotate(self, principal: Principal, account_id: int, owner: int, info: ExchangeInfo,
                      creds: dict[str, str], fingerprint: str, status: str, *, name: str | None = None) -> ExchangeAccount:
        """Store checked credentials (state and duplicates checked again under a lock), and ``name`` if
        given; return the account."""
        with self.db.session() as session:
            self._lock_for_connect(session, owner, fingerprint)  # vs. a racing connect/rotate of this key
            # claimed: the name read is the one the audit says this rotation renamed it from (vs. a rename)
            account = self._owned(session, principal, account_id, claim=True)
            self._not_disconnected(account)
            if self.duplicate(session, fingerprint, account.user_id, account.account_type, exclude=(account.id,)):
                raise AlreadyConnected("this exchange API key is already connected")
            old_name = account.name  # read now: the UPDATE below refreshes ``account``
            stored = self.store_credentials(session, account, info, creds, fingerprint, status, name=name)
            if stored is None:
                raise Conflict("this account is disconnected")
            details: dict[str, Any] = {"exchange": info.id, "status": stored.status}
            if name is not None and name != old_name:
                details.update({"from": old_name, "to": name})
            self.audit.record(session, "account.rotate", "ok", principal=principal, target=f"account:{stored.id}",
                              details=details)
            return stored

    def store_credentials(self, session: Session, account: ExchangeAccount, info: ExchangeInfo,
                          creds: dict[str, str], fingerprint: str, status: str,
                          name: str | None = None) -> ExchangeAccount | None:
        """Replace ``account``'s sealed credentials with ``creds`` (checked live, giving ``status``) in ``session``,
        and its name with ``name`` if given.

        A disabled account stays disabled. Returns the account as written, or None if it is disconnected.
        The caller checks duplicates and audits.
        """
        values: dict[str, Any] = dict(
            self.vault.seal_account_credentials(account, creds),
            key_fingerprint=fingerprint,
            key_hint=hint(primary_credential(info, creds)),
            # a disabled account stays disabled: decided in the UPDATE, on the status it has then
            status=case((ExchangeAccount.status == DISABLED, DISABLED), else_=status),
            validation_result="valid" if status == AccountStatus.ACTIVE else "no_validator",
        )
        if status == AccountStatus.ACTIVE:
            values["validated_at"] = utcnow()
        if name is not None:
            values["name"] = name
        return self._change(session, account, **values)

    def health_candidates(self) -> builtins.list[int]:
        """Return the ids of every account the key-health pass checks: live and not disabled, oldest first."""
        with self.db.session() as session:
            return list(session.scalars(select(ExchangeAccount.id).where(
                ExchangeAccount.status.in_(LIVE), ExchangeAccount.status != DISABLED).order_by(ExchangeAccount.id)))

    async def key_health(self, concurrency: int = 8) -> dict[str, int]:
        """Revalidate every live, enabled account with its exchange (the daily key-health pass): a rejected key
        makes its account ``invalid``, a key that can withdraw (unless allowed) ``suspended``, each with its
        event (see :meth:`revalidate`). At most ``concurrency`` checks at once; the gateway keeps each venue
        within its own limits. Idempotent: a second pass changes nothing more.

        Returns counts by outcome: the resulting statuses, ``unavailable`` (the exchange did not answer:
        unchanged, checked again next pass) and ``skipped`` (rotated, disconnected or unreadable meanwhile).
        Never raises for one account.
        """
        ids = await anyio.to_thread.run_sync(self.health_candidates)
        limit = anyio.Semaphore(max(1, concurrency))
        counts: dict[str, int] = {}

        async def one(account_id: int) -> None:
            async with limit:
                try:
                    account = await self.revalidate(SYSTEM, account_id, via="key_health")
                    outcome = str(account.status)
                except ExchangeUnavailable:
                    outcome = "unavailable"
                except DomainError:  # rotated or disconnected meanwhile, credentials unreadable: next pass
                    outcome = "skipped"
            counts[outcome] = counts.get(outcome, 0) + 1

        async with anyio.create_task_group() as group:
            for account_id in ids:
                group.start_soon(one, account_id)
        return counts

    async def revalidate(self, principal: Principal, account_id: int, *, via: str = "revalidate") -> ExchangeAccount:
        """Check stored credentials again. Invalid ones mark the account ``invalid``, a key that can withdraw
        (unless allowed) ``suspended``, valid ones ``active`` again (returned, not raised).

        Database work runs in worker threads; the exchange call is awaited on the event loop.
        Raises NotFound, Conflict (disconnected), ExchangeUnavailable (nothing changes).
        """
        account, info, creds = await anyio.to_thread.run_sync(self._plan_revalidate, principal, account_id)
        result = "valid"
        try:
            outcome = await self.gateway.validate(info, creds)
            if not outcome.verified:
                result = "no_validator"
            elif outcome.can_withdraw and not self.settings.allow_withdrawal_keys:
                result = "withdrawal_permission"
        except InvalidCredentials:
            result = "invalid_credentials"
        except ExchangeUnavailable:
            await self._audit_refusal("account.revalidate", principal, f"account:{account.id}",
                                      {"reason": "exchange_unavailable"})
            raise
        return await anyio.to_thread.run_sync(self._store_revalidate, principal, account_id, account.nonce, result,
                                              via)

    def _plan_revalidate(self, principal: Principal,
                         account_id: int) -> tuple[ExchangeAccount, ExchangeInfo, dict[str, str]]:
        """Every check of ``revalidate`` before the exchange call; return (account, venue, stored credentials)."""
        principal.require(WRITE)
        account = self.get(principal, account_id)
        self._not_disconnected(account)
        return account, self.catalogue.get(account.exchange), self.credentials_of(account)

    def _store_revalidate(self, principal: Principal, account_id: int, checked_nonce: bytes,
                          result: str, via: str = "revalidate") -> ExchangeAccount:
        """Record the check's ``result`` for the credentials checked (``checked_nonce``; a disabled account stays
        disabled); return the account. Raises Conflict if they were rotated or the account disconnected meanwhile.
        """
        with self.db.session() as session:
            # claimed: the status read is the one this check moves it from (its event says so, exactly once)
            account = self._owned(session, principal, account_id, claim=True)
            self._not_disconnected(account)
            before = account.status
            status = STATUS_OF_RESULT.get(result, AccountStatus.INVALID)
            # only for the credentials that were checked, and a disabled account stays disabled
            stored = self._change(session, account, ExchangeAccount.nonce == checked_nonce,
                                  status=case((ExchangeAccount.status == DISABLED, DISABLED), else_=status),
                                  validated_at=utcnow(), validation_result=result)
            if stored is None:
                self._not_disconnected(session.get(ExchangeAccount, account.id, populate_existing=True))
                raise Conflict("the credentials were rotated while they were being checked; check again")
            self.audit.record(session, "account.revalidate", "ok", principal=principal,
                              target=f"account:{stored.id}", details={"result": result, "status": stored.status})
            account_events.status_changed(session, stored, before, stored.status, result, via)
            return stored

    def set_enabled(self, principal: Principal, account_id: int, enabled: bool) -> ExchangeAccount:
        """Disable a live account, or enable a disabled one. Raises NotFound, Conflict."""
        principal.require(WRITE)

        def step(session: Session) -> ExchangeAccount:
            account = self._owned(session, principal, account_id, claim=True)
            self._not_disconnected(account)
            before = account.status
            after = before
            if enabled and before == DISABLED:
                after = STATUS_OF_RESULT.get(account.validation_result or "", AccountStatus.INVALID)
            elif not enabled:
                after = DISABLED
            # a no-op (enabling an enabled account) writes nothing but is still answered and audited
            if after != before and self._change(session, account, ExchangeAccount.status == before,
                                                status=after) is None:
                raise _RowChanged
            self.audit.record(session, "account.enable" if enabled else "account.disable", "ok",
                              principal=principal, target=f"account:{account.id}",
                              details={"from": before, "to": after})
            return account

        return self._decided_again(step)

    def disconnect(self, principal: Principal, account_id: int) -> ExchangeAccount:
        """Disconnect (terminal): the credentials are destroyed, the row is kept for history.

        The same exchange key may be connected again afterwards. Of concurrent disconnects of one
        account exactly one succeeds. Returns the account. Raises NotFound, Conflict (disconnected).
        """
        principal.require(DELETE)
        with self.db.session() as session:
            account = self._owned(session, principal, account_id)
            self._not_disconnected(account)
            done = self._disconnect(session, principal, account)
            if done is None:
                raise Conflict("this account is disconnected")
            return done

    def disconnect_in(self, session: Session, principal: Principal, account: ExchangeAccount) -> ExchangeAccount | None:
        """Disconnect ``account`` within ``session`` (a larger operation's transaction); see ``_disconnect``."""
        return self._disconnect(session, principal, account)

    def _disconnect(self, session: Session, principal: Principal, account: ExchangeAccount) -> ExchangeAccount | None:
        """Shred ``account``'s credentials and mark it disconnected, audited; None if it already was (or is gone).

        The UPDATE is conditional on the status read, so the event names the status the account really left:
        one changed meanwhile (disabled, invalidated) is read again in this transaction and decided again.
        Raises Conflict if it kept changing.
        """
        now = utcnow()
        for _ in range(CHANGE_ATTEMPTS):
            before = account.status
            done = self._change(session, account, ExchangeAccount.status == before, status=DISCONNECTED,
                                disconnected_at=now, ciphertext=b"", nonce=b"", wrapped_dek=b"")
            if done is not None:
                self.audit.record(session, "account.disconnect", "ok", principal=principal,
                                  target=f"account:{done.id}", details={"exchange": done.exchange})
                account_events.status_changed(session, done, before, DISCONNECTED, "disconnected", "disconnect")
                return done
            current = session.get(ExchangeAccount, account.id, populate_existing=True)
            if current is None or current.status == DISCONNECTED:
                return None
            account = current
        raise Conflict("the account was changed by another request at the same time; try again")

    @staticmethod
    def _not_disconnected(account: ExchangeAccount | None) -> None:
        if account is None or account.status == DISCONNECTED:
            raise Conflict("this account is disconnected")

    def owned_ids(self, user_id: int, ids: builtins.list[int]) -> set[int]:
        """Return those of ``ids`` that are live accounts of ``user_id``."""
        ids = [i for i in ids if valid_id(i)]
        if not ids:
            return set()
        with self.db.session() as session:
            rows = session.scalars(select(ExchangeAccount.id).where(
                ExchangeAccount.user_id == user_id, ExchangeAccount.id.in_(ids), ExchangeAccount.status.in_(LIVE)))
            return set(rows)




class AccountsFacade:
    """The accounts capability's façade (:class:`strongroom.accounts.interfaces.Accounts`, whose docstrings are
    the contract): async; the database work of ``engine`` runs in a worker thread here, never in a surface."""

    def __init__(self, engine: ExchangeAccountService) -> None:
        self.engine = engine

    async def resolve_exchange(self, name: str) -> ExchangeInfo:
        return self.engine.resolve_exchange(name)  # the catalogue, in memory: no thread

    async def connect(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                      name: str | None = None, account_type: str | None = None, user_id: int | None = None,
                      policy: ConnectPolicy | None = None) -> ExchangeAccount:
        return await self.engine.connect(principal, exchange, dict(credentials), name=name,
                                         account_type=account_type, user_id=user_id,
                                         one_per_exchange=(policy or ConnectPolicy()).one_per_exchange)

    @overload
    async def find(self, principal: Principal, query: AccountQuery, paging: ByCursor) -> Page[ExchangeAccount]: ...

    @overload
    async def find(self, principal: Principal, query: AccountQuery,
                   paging: ByOffset) -> OffsetPage[ExchangeAccount]: ...

    async def find(self, principal: Principal, query: AccountQuery,
                   paging: ByCursor | ByOffset) -> Page[ExchangeAccount] | OffsetPage[ExchangeAccount]:
        found: Page[ExchangeAccount] | OffsetPage[ExchangeAccount] = await anyio.to_thread.run_sync(
            self.engine.find, principal, query, paging)
        return found

    async def get(self, principal: Principal, account_id: int) -> ExchangeAccount:
        return await anyio.to_thread.run_sync(self.engine.get, principal, account_id)

    async def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> ExchangeAccount:
        return await anyio.to_thread.run_sync(self.engine.get_by_public_id, principal, public_id)

    async def rename(self, principal: Principal, account_id: int, name: str) -> ExchangeAccount:
        return await anyio.to_thread.run_sync(self.engine.rename, principal, account_id, name)

    async def rotate(self, principal: Principal, account_id: int, credentials: Mapping[str, Any], *,
                     name: str | None = None) -> ExchangeAccount:
        return await self.engine.rotate(principal, account_id, dict(credentials), name=name)

    async def revalidate(self, principal: Principal, account_id: int) -> ExchangeAccount:
        return await self.engine.revalidate(principal, account_id)

    async def set_enabled(self, principal: Principal, account_id: int, enabled: bool) -> ExchangeAccount:
        return await anyio.to_thread.run_sync(self.engine.set_enabled, principal, account_id, enabled)

    async def disconnect(self, principal: Principal, target: int | AccountQuery) -> ExchangeAccount:
        if isinstance(target, AccountQuery):
            return await anyio.to_thread.run_sync(self.engine.disconnect_matching, principal, target)
        return await anyio.to_thread.run_sync(self.engine.disconnect, principal, target)
