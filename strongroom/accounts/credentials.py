"""Stored exchange credentials (Cadenza's "credential"): create (checked live, sealed), list, verify,
rotate, revoke, and connecting accounts with them.

A credential is an exchange API key a user stores on its own, before or while connecting accounts
with it. The rules of accounts apply to it: it is checked live with the exchange before anything is
stored, a key that can withdraw is refused, secrets are sealed by the vault and never returned.

Accounts connected with a credential keep their own sealed copy of its fields and a link
(``account_credentials``), so every account path (balances, disconnect's crypto-shred, master-key
re-wrap) stays as it is. Rotating a credential checks the new key live once, then rewrites the
credential and every live account linked to it in one transaction; revoking shreds the credential
and disconnects (shreds) every live account linked to it. Every state change is a conditional UPDATE
on the state it was decided from (a row lock is a no-op on SQLite), so concurrent rotations,
revocations and connects take effect once and never pair a credential with stale secrets.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from strongroom.accounts.interfaces import Reach
from strongroom.accounts.services import LIVE, ExchangeAccountService, primary_credential
from strongroom.audit.services import AuditService
from strongroom.crypto.tokens import Hasher, hint
from strongroom.db import Database, utcnow
from strongroom.enums import AccountStatus, CredentialStatus
from strongroom.errors import (
    AlreadyConnected,
    Conflict,
    Forbidden,
    InvalidCredentials,
    NotFound,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo
from strongroom.models import AccountCredential, ExchangeAccount, ExchangeCredential
from strongroom.pagination import OffsetPage, paginate_offset
from strongroom.principal import Principal
from strongroom.scopes import DELETE, READ, WRITE, Scope
from strongroom.vault.services import Vault

REVOKED = CredentialStatus.REVOKED
# How a live check's outcome is recorded on a credential (``check_live``'s status, or the refusal's code).
CHECKED = {AccountStatus.ACTIVE: (CredentialStatus.ACTIVE, "valid"),
           AccountStatus.UNVERIFIED: (CredentialStatus.CREATED, "no_validator"),
           "invalid_credentials": (CredentialStatus.EXPIRED, "invalid_credentials"),
           "withdrawal_permission": (CredentialStatus.EXPIRED, "withdrawal_permission")}
MAX_VERIFY = 20  # credentials one verify call may check (each is one exchange call)


def venue_credentials(info: ExchangeInfo, api_key: str | None, api_secret: str | None,
                      api_passphrase: str | None = None) -> dict[str, str]:
    """Return the venue's credential fields from the generic trio (key, secret, passphrase) other APIs use.

    The trio fills the venue's required fields in the catalogue's order (``api_key, secret,
    passphrase`` for most venues; ``address, private_key`` for Hyperliquid). A value the venue has
    no field for (e.g. a passphrase for a venue that takes none) is ignored, never stored; a missing
    one is left out, for ``Catalogue.check_credentials`` to name. Raises ValidationFailed if the venue
    needs more than three fields.
    """
    if len(info.credentials) > 3:
        raise ValidationFailed(f"{info.name} needs credentials this API cannot carry",
                               fields={name: "not supported" for name in info.credentials[3:]})
    given = (api_key, api_secret, api_passphrase)
    return {name: value for name, value in zip(info.credentials, given, strict=False) if value is not None}


@dataclass(frozen=True)
class _Plan:
    owner: int
    info: ExchangeInfo
    credentials: dict[str, str]
    fingerprint: str


class CredentialService:
    def __init__(self, db: Database, audit: AuditService, vault: Vault, hasher: Hasher, catalogue: Catalogue,
                 accounts: ExchangeAccountService) -> None:
        self.db = db
        self.audit = audit
        self.vault = vault
        self.hasher = hasher
        self.catalogue = catalogue
        self.accounts = accounts

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _manager(principal: Principal, scope: Scope) -> None:
        """Raise InsufficientScope without ``scope``, Forbidden for a key bound to accounts (credentials
        reach accounts it is not bound to)."""
        principal.require(scope)
        if principal.account_ids is not None:
            raise Forbidden("a key bound to accounts cannot manage exchange credentials")

    @staticmethod
    def _owned(session: Session, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        """Return the credential ``public_id`` if the principal may see it; raise NotFound otherwise."""
        credential = session.scalar(select(ExchangeCredential).where(ExchangeCredential.public_id == public_id)
                                    .execution_options(populate_existing=True))
        if credential is None or not principal.acts_for(credential.user_id):
            raise NotFound("credential not found")
        return credential

    @staticmethod
    def _not_revoked(credential: ExchangeCredential) -> None:
        if credential.status == REVOKED:
            raise Conflict("this credential is revoked")

    def _plan(self, principal: Principal, exchange: str, credentials: Mapping[str, Any],
              owner: int | None = None) -> _Plan:
        owner = self.accounts.authorize_connect(principal, owner)
        info = self.accounts.resolve_exchange(exchange)
        creds = self.catalogue.check_credentials(info, credentials)
        return _Plan(owner, info, creds, self.hasher.fingerprint(info.id, primary_credential(info, creds)))

    @staticmethod
    def _nickname(nickname: str | None) -> str | None:
        if nickname is None:
            return None
        nickname = nickname.strip()
        if len(nickname) > 100:
            raise ValidationFailed("invalid nickname", fields={"nickname": "at most 100 characters"})
        return nickname or None

    def _new(self, plan: _Plan, status: str, *, nickname: str | None, kind: str | None) -> ExchangeCredential:
        """Return a new credential row holding ``plan``'s fields sealed, recorded as checked with ``status``."""
        recorded, result = CHECKED[status]
        credential = ExchangeCredential(
            public_id=uuid.uuid4(), user_id=plan.owner, exchange=plan.info.id, kind=kind, nickname=nickname,
            status=recorded, key_fingerprint=plan.fingerprint,
            key_hint=hint(primary_credential(plan.info, plan.credentials)),
            validated_at=utcnow() if recorded == CredentialStatus.ACTIVE else None, validation_result=result)
        for column, value in self.vault.seal_credential(credential, plan.credentials).items():
            setattr(credential, column, value)
        return credential

    def _record_check(self, session: Session, credential: ExchangeCredential, outcome: str) -> ExchangeCredential:
        """Record a live check's ``outcome`` (see CHECKED) on ``credential`` if it still holds the secrets checked.

        Returns the row as written. Raises Conflict if it was rotated or revoked meanwhile.
        """
        status, result = CHECKED[outcome]
        values: dict[str, Any] = {"status": status, "validation_result": result}
        if status == CredentialStatus.ACTIVE:
            values["validated_at"] = utcnow()
        return self._write_unchanged(session, credential, values)

    @staticmethod
    def _write_unchanged(session: Session, credential: ExchangeCredential, values: dict[str, Any]) -> ExchangeCredential:
        """Write ``values`` to ``credential`` if it still holds the secrets read (same nonce, not revoked).

        Returns the row as written. Raises Conflict if it was rotated or revoked meanwhile.
        """
        written = session.scalars(
            update(ExchangeCredential)
            .where(ExchangeCredential.id == credential.id, ExchangeCredential.status != REVOKED,
                   ExchangeCredential.nonce == credential.nonce)
            .values(**values).returning(ExchangeCredential)
            .execution_options(populate_existing=True, synchronize_session=False)
        ).first()
        if written is None:
            raise Conflict("the credential was rotated or revoked at the same time; try again")
        return written

    def _record_refusal(self, principal: Principal, credential: ExchangeCredential, code: str) -> None:
        """After the exchange refused ``credential`` (``code``): mark it expired, audited (unless it changed meanwhile)."""
        try:
            with self.db.session() as session:
                self._record_check(session, credential, code)
                self.audit.record(session, "credential.check", "refused", principal=principal,
                                  target=f"credential:{credential.public_id}", details={"reason": code})
        except Conflict:
            pass  # rotated or revoked meanwhile: the refusal is about secrets it no longer holds

    def _open(self, principal: Principal, public_id: uuid.UUID, scope: Scope) -> tuple[ExchangeCredential, dict[str, str]]:
        """Return a live credential of the principal's and its opened fields. Raises NotFound, Conflict (revoked)."""
        self._manager(principal, scope)
        with self.db.session() as session:
            credential = self._owned(session, principal, public_id)
        self._not_revoked(credential)
        return credential, self.vault.open_credential(credential)

    def _linked_live(self, session: Session, credential_id: int) -> list[ExchangeAccount]:
        return list(session.scalars(
            select(ExchangeAccount).join(AccountCredential, AccountCredential.account_id == ExchangeAccount.id)
            .where(AccountCredential.credential_id == credential_id, ExchangeAccount.status.in_(LIVE))
            .order_by(ExchangeAccount.id).execution_options(populate_existing=True)))

    # --- create and read ------------------------------------------------------------------------

    async def create(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                     nickname: str | None = None, kind: str | None = None) -> ExchangeCredential:
        """Check an exchange key live, then store it sealed; return the credential.

        Its status is ``active`` (the exchange accepted it) or ``created`` (the venue has no live check).
        Raises ValidationFailed (venue, fields, nickname), Forbidden (a key bound to accounts),
        InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing stored).
        """
        plan = await anyio.to_thread.run_sync(self._plan, principal, exchange, credentials)
        nickname = self._nickname(nickname)
        status = await self.accounts.check_live(plan.info, plan.credentials, principal, "credential.create", None)
        return await anyio.to_thread.run_sync(functools.partial(
            self._store_create, principal, plan, status, nickname=nickname, kind=kind))

    def _store_create(self, principal: Principal, plan: _Plan, status: str, *, nickname: str | None,
                      kind: str | None) -> ExchangeCredential:
        credential = self._new(plan, status, nickname=nickname, kind=kind)
        with self.db.session() as session:
            session.add(credential)
            session.flush()
            self.audit.record(session, "credential.create", "ok", principal=principal,
                              target=f"credential:{credential.public_id}",
                              details={"exchange": plan.info.id, "status": credential.status})
        return credential

    def get(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        """Return one credential; NotFound if it is not the principal's. Raises Forbidden (bound key)."""
        self._manager(principal, READ)
        with self.db.session() as session:
            return self._owned(session, principal, public_id)

    def list(self, principal: Principal, *, kinds: Collection[str] | None = None,
             statuses: Collection[str] | None = None, public_ids: Collection[uuid.UUID] | None = None,
             offset: int = 0, limit: int = 1000) -> OffsetPage[ExchangeCredential]:
        """Return an offset page (oldest first, with the total) of the principal's own credentials.

        ``kinds``, ``statuses`` and ``public_ids`` restrict the listing (an empty collection matches
        nothing). Raises Forbidden (bound key), ValidationFailed (status, limit, offset).
        """
        self._manager(principal, READ)
        query = select(ExchangeCredential).where(ExchangeCredential.user_id == principal.user_id)
        if kinds is not None:
            query = query.where(ExchangeCredential.kind.in_(sorted(kinds) or [""]))
        if statuses is not None:
            if set(statuses) - set(CredentialStatus):
                raise ValidationFailed("invalid status", fields={"status": ", ".join(CredentialStatus)})
            query = query.where(ExchangeCredential.status.in_(sorted(statuses) or [""]))
        if public_ids is not None:
            query = query.where(ExchangeCredential.public_id.in_(sorted(public_ids, key=str) or [uuid.UUID(int=0)]))
        with self.db.session() as session:
            return paginate_offset(session, query, ExchangeCredential.id, offset, limit)

    def linked(self, account_ids: Collection[int]) -> dict[int, ExchangeCredential]:
        """Return the credential each of ``account_ids`` was connected with (accounts without one are left out).

        Internal: for showing accounts the caller was already allowed to see.
        """
        if not account_ids:
            return {}
        with self.db.session() as session:
            rows = session.execute(
                select(AccountCredential.account_id, ExchangeCredential)
                .join(ExchangeCredential, ExchangeCredential.id == AccountCredential.credential_id)
                .where(AccountCredential.account_id.in_(sorted(account_ids))))
            return {account_id: credential for account_id, credential in rows}

    # --- connecting accounts ----------------------------------------------------------------------

    async def connect_inline(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                             name: str | None = None, account_type: str | None = None,
                             kind: str | None = None) -> tuple[ExchangeAccount, ExchangeCredential]:
        """Connect an account with keys given inline: they are stored as a credential too, linked to the
        account, in the same transaction (one live check for both). Returns (account, credential).

        Raises what ``ExchangeAccountService.connect`` raises.
        """
        made: builtins.list[ExchangeCredential] = []

        def store_credential(session: Session, account: ExchangeAccount) -> None:
            info = self.catalogue.get(account.exchange)
            plan = _Plan(account.user_id, info, self.catalogue.check_credentials(info, credentials),
                         account.key_fingerprint)
            credential = self._new(plan, AccountStatus.ACTIVE if account.status == AccountStatus.ACTIVE else AccountStatus.UNVERIFIED, nickname=None,
                                   kind=kind)
            session.add(credential)
            session.flush()
            session.add(AccountCredential(account_id=account.id, credential_id=credential.id))
            self.audit.record(session, "credential.create", "ok", principal=principal,
                              target=f"credential:{credential.public_id}",
                              details={"exchange": info.id, "status": credential.status, "account_id": account.id})
            made.append(credential)

        account = await self.accounts.connect(principal, exchange, dict(credentials), name=name,
                                              account_type=account_type, on_insert=store_credential)
        return account, made[0]

    async def connect(self, principal: Principal, public_id: uuid.UUID, *, exchange: str | None = None,
                      name: str | None = None, account_type: str | None = None
                      ) -> tuple[ExchangeAccount, ExchangeCredential]:
        """Connect an account of the credential's owner with a stored credential (checked live again).

        ``exchange``, if given, must be the credential's venue. Returns (account, credential).
        Raises NotFound (not the principal's credential), Conflict (revoked, or rotated/revoked while
        connecting), ValidationFailed (venue, account type, name), and what ``ExchangeAccountService.connect``
        raises; a key the exchange now refuses marks the credential expired.
        """
        credential, fields = await anyio.to_thread.run_sync(self._open, principal, public_id, WRITE)
        if exchange is not None and self.accounts.resolve_exchange(exchange).id != credential.exchange:
            raise ValidationFailed("the venue is not the credential's", fields={"venue": "not the credential's venue"})
        used: builtins.list[ExchangeCredential] = []

        def link(session: Session, account: ExchangeAccount) -> None:
            outcome = AccountStatus.ACTIVE if account.status == AccountStatus.ACTIVE else AccountStatus.UNVERIFIED
            used.append(self._record_check(session, credential, outcome))
            session.add(AccountCredential(account_id=account.id, credential_id=credential.id))

        try:
            account = await self.accounts.connect(principal, credential.exchange, fields, name=name,
                                                  account_type=account_type, user_id=credential.user_id,
                                                  on_insert=link)
        except (InvalidCredentials, WithdrawalPermission) as exc:
            await anyio.to_thread.run_sync(self._record_refusal, principal, credential, exc.code)
            raise
        return account, used[0]

    # --- verify -----------------------------------------------------------------------------------

    async def verify(self, principal: Principal, public_ids: Collection[uuid.UUID]) -> builtins.list[Reach]:
        """Check each credential live again and return the trading accounts its key reaches (see Reach).

        Each credential is recorded as checked (``active``, or ``created`` for venues without a live
        check). Raises ValidationFailed (none or too many ids), NotFound, Conflict (revoked),
        Forbidden (bound key), InvalidCredentials / WithdrawalPermission (the credential is marked
        ``expired``), ExchangeUnavailable (nothing changes).
        """
        ids = list(dict.fromkeys(public_ids))
        if not 1 <= len(ids) <= MAX_VERIFY:
            raise ValidationFailed("give 1 to 20 credential ids", fields={"credentialIds": f"1 to {MAX_VERIFY} ids"})
        opened = [await anyio.to_thread.run_sync(self._open, principal, public_id, WRITE) for public_id in ids]
        checked: builtins.list[tuple[ExchangeCredential, str]] = []
        for credential, fields in opened:
            info = self.catalogue.get(credential.exchange)
            try:
                status = await self.accounts.check_live(info, fields, principal, "credential.verify",
                                                        f"credential:{credential.public_id}")
            except (InvalidCredentials, WithdrawalPermission) as exc:
                await anyio.to_thread.run_sync(self._record_refusal, principal, credential, exc.code)
                raise
            checked.append((credential, status))
        return await anyio.to_thread.run_sync(self._store_verify, principal, checked)

    def _store_verify(self, principal: Principal, checked: builtins.list[tuple[ExchangeCredential, str]]) -> builtins.list[Reach]:
        reach: builtins.list[Reach] = []
        with self.db.session() as session:
            for credential, status in checked:
                written = self._record_check(session, credential, status)
                self.audit.record(session, "credential.verify", "ok", principal=principal,
                                  target=f"credential:{written.public_id}", details={"status": written.status})
                reach += self._reach(session, written)
        return reach

    def _reach(self, session: Session, credential: ExchangeCredential) -> builtins.list[Reach]:
        """The accounts ``credential``'s key reaches: the owner's live ones, others' (unavailable), and,
        unless another user holds the key, the venue's default account type when it is not connected."""
        live = session.scalars(select(ExchangeAccount).where(
            ExchangeAccount.key_fingerprint == credential.key_fingerprint, ExchangeAccount.status.in_(LIVE))
            .order_by(ExchangeAccount.id)).all()
        own = [a for a in live if a.user_id == credential.user_id]
        taken = sorted({a.account_type for a in live if a.user_id != credential.user_id})
        found = [Reach(credential, a.account_type, "own", a) for a in own]
        found += [Reach(credential, account_type, "unavailable") for account_type in taken]
        info = self.catalogue.get(credential.exchange)
        default = info.account_types[0] if info.account_types else "spot"
        if not taken and default not in {a.account_type for a in own}:
            found.append(Reach(credential, default, "new"))
        return found

    # --- rotate and revoke ------------------------------------------------------------------------

    async def rotate(self, principal: Principal, public_id: uuid.UUID, changes: Mapping[str, str]) -> ExchangeCredential:
        """Replace fields of a credential (the others are kept): the new key is checked live first, then
        the credential and every live account connected with it are rewritten in one transaction.

        Returns the credential. Raises ValidationFailed (nothing to change, fields), NotFound, Forbidden,
        Conflict (revoked, or changed meanwhile), AlreadyConnected (the new key is another user's),
        InvalidCredentials, WithdrawalPermission, ExchangeUnavailable (nothing changes).
        """
        if not changes:
            raise ValidationFailed("nothing to rotate", fields={"credentials": "give the new key fields"})
        credential, fields = await anyio.to_thread.run_sync(self._open, principal, public_id, WRITE)
        info = self.catalogue.get(credential.exchange)
        creds = self.catalogue.check_credentials(info, {**fields, **changes})
        fingerprint = self.hasher.fingerprint(info.id, primary_credential(info, creds))
        # whether the new key is another user's is answered only after the live check proved possession
        # of its secret (``_store_rotate``): a wrong secret is always InvalidCredentials
        status = await self.accounts.check_live(info, creds, principal, "credential.rotate",
                                                f"credential:{credential.public_id}")
        return await anyio.to_thread.run_sync(functools.partial(
            self._store_rotate, principal, credential, info, creds, fingerprint, status))

    def _refuse_taken(self, credential: ExchangeCredential, fingerprint: str,
                      session: Session) -> builtins.list[ExchangeAccount]:
        """Return the live accounts linked to ``credential``; raise AlreadyConnected if the key ``fingerprint``
        may not be live in one of them (see ``ExchangeAccountService.duplicate``). A credential no account
        uses may hold any key (storing a key binds no account; connecting it is checked then)."""
        linked = self._linked_live(session, credential.id)
        exclude = [a.id for a in linked]
        if any(self.accounts.duplicate(session, fingerprint, credential.user_id, t, exclude=exclude)
               for t in {a.account_type for a in linked}):
            raise AlreadyConnected("this exchange API key is already connected")
        return linked

    def _store_rotate(self, principal: Principal, credential: ExchangeCredential, info: ExchangeInfo,
                      creds: dict[str, str], fingerprint: str, status: str) -> ExchangeCredential:
        recorded, result = CHECKED[status]
        with self.db.session() as session:
            self.accounts.lock_for_connect(session, credential.user_id, fingerprint)
            values: dict[str, Any] = dict(
                self.vault.seal_credential(credential, creds), key_fingerprint=fingerprint,
                key_hint=hint(primary_credential(info, creds)), status=recorded, validation_result=result,
                validated_at=utcnow() if recorded == CredentialStatus.ACTIVE else None)
            written = self._write_unchanged(session, credential, values)
            linked = self._refuse_taken(written, fingerprint, session)
            for account in linked:
                if self.accounts.store_credentials(session, account, info, creds, fingerprint, status) is not None:
                    self.audit.record(session, "account.rotate", "ok", principal=principal,
                                      target=f"account:{account.id}",
                                      details={"exchange": info.id, "credential": str(written.public_id)})
            self.audit.record(session, "credential.rotate", "ok", principal=principal,
                              target=f"credential:{written.public_id}",
                              details={"status": written.status, "accounts": len(linked)})
            return written

    def revoke(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        """Revoke a credential (terminal): its secrets are destroyed and every live account connected with
        it is disconnected (their copies destroyed too), in one transaction.

        Of concurrent revocations exactly one succeeds. Returns the credential. Raises NotFound,
        Forbidden, InsufficientScope (``delete``), Conflict (already revoked).
        """
        self._manager(principal, DELETE)
        with self.db.session() as session:
            credential = self._owned(session, principal, public_id)
            self._not_revoked(credential)
            written = session.scalars(
                update(ExchangeCredential)
                .where(ExchangeCredential.id == credential.id, ExchangeCredential.status != REVOKED)
                .values(status=REVOKED, revoked_at=utcnow(), ciphertext=b"", nonce=b"", wrapped_dek=b"")
                .returning(ExchangeCredential)
                .execution_options(populate_existing=True, synchronize_session=False)
            ).first()
            if written is None:
                raise Conflict("this credential is revoked")
            disconnected = [a.id for a in self._linked_live(session, written.id)
                            if self.accounts.disconnect_in(session, principal, a) is not None]
            self.audit.record(session, "credential.revoke", "ok", principal=principal,
                              target=f"credential:{written.public_id}", details={"accounts_disconnected": disconnected})
            return written
