"""Platform API keys: bearer, HMAC-signing and RSA/Ed25519 public keys, with scopes, account
binding, IP allowlists, expiry, rolling and deletion.

A principal authenticated by a key acts only on keys no more powerful than itself and never makes
a key more powerful than itself (see :mod:`strongroom.keys.power`). Changes of a key are optimistic:
each writes ``WHERE version = <the version read>`` and is decided again if another change came first,
so concurrent changes apply exactly once each. The per-user key cap is a counter on the user, taken
and given back by conditional UPDATEs in the transaction that inserts or deletes the key.
"""

from __future__ import annotations

import builtins
import functools
import ipaddress
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import exists, literal, or_, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from strongroom import events
from strongroom import scopes as scope_rules
from strongroom.audit.services import AuditService
from strongroom.crypto import tokens
from strongroom.crypto.signatures import KeyFormatError, Verifier, generate_keypair, load_public_key, verifier_from_pem
from strongroom.crypto.tokens import Hasher
from strongroom.db import Base, Database, delete_in_batches, retry_read_once, rowcount, utcnow
from strongroom.enums import AuthMethod, EventType, KeyKind, UsageLevel
from strongroom.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientScope,
    InsufficientUsageLevel,
    LimitExceeded,
    NotFound,
    ValidationFailed,
)
from strongroom.keys.power import KeyPower, Network, parse_networks
from strongroom.models import ApiKey, KeyUsage, TZDateTime, User
from strongroom.pagination import Page, paginate, valid_id
from strongroom.principal import Principal, accounts_within
from strongroom.scopes import DELETE, READ, WRITE
from strongroom.settings import Settings
from strongroom.users.services import UserSnapshot, snapshot
from strongroom.vault.services import Vault

KINDS = tuple(KeyKind)
DEFAULT_SCOPES = scope_rules.DEFAULT
# usage levels, lowest first (users.USAGE_LEVELS)
LEVELS = tuple(UsageLevel)
T = TypeVar("T")
# How often a change is decided again when the key changed under it before giving up (409).
CHANGE_ATTEMPTS = 8
# What a numbered page (:meth:`ApiKeyService.numbered_page`) may be sorted by, and its largest page.
SORT_FIELDS = ("id", "created_at", "updated_at", "last_used_at", "name")
MAX_PAGE_LIMIT = 100
# The expiry scan's memory: a key that expired longer ago than this gets no api_key.expired any more (the
# marks of notices are kept at least this long plus the notice period: strongroom.events.services).
EXPIRED_LOOKBACK = timedelta(days=30)


@dataclass(frozen=True)
class KeyRecord:
    """Everything verification needs about one key, pre-parsed; cached briefly in memory."""

    key_id: str
    kind: str
    user: UserSnapshot
    scopes: frozenset[str]
    account_ids: frozenset[int] | None
    networks: tuple[Network, ...]
    expires_at: float | None  # epoch seconds
    enabled: bool
    secret_hashes: tuple[tuple[str, float | None], ...] = ()  # (hash, valid-until or None)
    hmac_secrets: tuple[tuple[str, float | None], ...] = ()
    verifier: Verifier | None = None
    # principals already built from this record, by (client IP, scheme): one per caller, not per request
    _principals: dict[tuple[str | None, AuthMethod], Principal] = field(default_factory=dict, init=False, repr=False,
                                                                 compare=False)

    def principal(self, client_ip: str | None, scheme: AuthMethod) -> Principal:
        """Return the principal of a request authenticated by this key (built once per IP and scheme)."""
        memo = self._principals.get((client_ip, scheme))
        if memo is not None:
            return memo
        if len(self._principals) > 1000:  # a record lives for the cache TTL; this bounds a burst of IPs
            self._principals.clear()
        memo = self._principals[(client_ip, scheme)] = Principal(
            user_id=self.user.id,
            username=self.user.username,
            is_admin=self.user.is_admin,
            usage_level=self.user.usage_level,
            key_id=self.key_id,
            scopes=self.scopes,
            account_ids=self.account_ids,
            client_ip=client_ip,
            scheme=scheme,
            key_networks=self.networks,
            key_expires_at=self.expires_at,
        )
        return memo


def _epoch(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt else None


def power_of(key: ApiKey) -> KeyPower:
    """Return what ``key`` may do (its scopes, account binding, IP allowlist and expiry)."""
    return KeyPower(
        scopes=frozenset(key.scopes),
        account_ids=frozenset(key.account_ids) if key.account_ids is not None else None,
        networks=parse_networks(key.ip_allowlist),
        expires_at=_epoch(key.expires_at),
    )


class AccountOwnership(Protocol):
    """What key management asks of the exchange accounts (``ExchangeAccountService``)."""

    def owned_ids(self, user_id: int, ids: list[int]) -> set[int]:
        """Return those of ``ids`` that are live accounts of ``user_id``."""
        ...


class ApiKeyService:
    def __init__(self, db: Database, settings: Settings, audit: AuditService, vault: Vault, hasher: Hasher,
                 accounts: AccountOwnership) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.vault = vault
        self.hasher = hasher
        self.accounts = accounts
        self.prefix = settings.bearer_key_prefix
        self.hmac_prefix = settings.bearer_key_prefix + "s"
        self.listeners: list[Callable[[str], None]] = []  # told (key_id) when a key changes in this process

    # --- validation of attributes -------------------------------------------------------------

    @staticmethod
    def _scopes(principal: Principal, scopes: object) -> list[str]:
        """Return ``scopes`` validated (None: the default), each granted by the principal.

        Raises ValidationFailed (malformed) or InsufficientScope (a scope the principal lacks).
        """
        held = scope_rules.grantable_by(principal.scopes, is_admin=principal.is_admin,
                                        by_key=principal.key_id is not None)
        return scope_rules.grantable(held, scopes, default=DEFAULT_SCOPES)

    def _account_ids(self, principal: Principal, account_ids: list[int] | None) -> list[int] | None:
        if account_ids is None:
            return sorted(principal.account_ids) if principal.account_ids is not None else None
        if not isinstance(account_ids, list) or not all(isinstance(a, int) and not isinstance(a, bool)
                                                          for a in account_ids):
            raise ValidationFailed("account_ids must be a list of integers", fields={"account_ids": "list of integers"})
        if not account_ids:
            # one meaning on every surface: a key bound to no account would be a key for nothing, and
            # TradrAPI's empty accountIds means every account (that surface passes None for it)
            raise ValidationFailed("account_ids must not be empty: give at least one account, or null for every "
                                   "account", fields={"account_ids": "at least one account id, or null"})
        wanted = sorted(set(account_ids))
        if principal.account_ids is not None and not set(wanted) <= principal.account_ids:
            raise InsufficientScope("a key cannot be bound to accounts its creator cannot see")
        missing = set(wanted) - self.accounts.owned_ids(principal.user_id, wanted)
        if missing:
            raise ValidationFailed("unknown exchange accounts",
                                   fields={"account_ids": f"not your live accounts: {sorted(missing)}"})
        return wanted

    @staticmethod
    def _inherited_allowlist(principal: Principal) -> list[str]:
        """Return the allowlist a key made by ``principal`` gets when none is given: its key's own."""
        return [str(net) for net in principal.key_networks]

    @staticmethod
    def _inherited_expiry(principal: Principal) -> datetime | None:
        """Return the expiry a key made by ``principal`` gets when none is given: its key's own (whole second)."""
        if principal.key_expires_at is None:
            return None
        return datetime.fromtimestamp(math.floor(principal.key_expires_at), UTC)

    @staticmethod
    def _not_wider(principal: Principal, key: ApiKey, verb: str) -> None:
        """Raise InsufficientScope if ``key`` is more powerful than the key ``principal`` authenticated with.

        ``verb`` says what was refused ("create", "roll", ...). Sessions and passwords pass (all of the user's power).
        """
        caller = KeyPower.of_principal(principal)
        if caller is None:
            return
        excess = power_of(key).excess_over(caller)
        if excess is not None:
            raise InsufficientScope(f"a key cannot {verb} a key more powerful than itself (wider {excess})")

    @staticmethod
    def _allowlist(entries: list[str] | None) -> list[str]:
        if entries is None:
            return []
        if not isinstance(entries, list) or len(entries) > 100:
            raise ValidationFailed("ip_allowlist must be a list of CIDRs", fields={"ip_allowlist": "list of CIDRs"})
        out = []
        for entry in entries:
            try:
                out.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
            except ValueError:
                raise ValidationFailed(f"invalid CIDR: {entry!r}", fields={"ip_allowlist": f"invalid CIDR {entry!r}"}) from None
        return list(dict.fromkeys(out))

    @staticmethod
    def _expiry(expires_at: datetime | None) -> datetime | None:
        if expires_at is None:
            return None
        if expires_at.tzinfo is None:
            raise ValidationFailed("expires_at needs a timezone", fields={"expires_at": "timezone required"})
        if expires_at <= utcnow():
            raise ValidationFailed("expires_at is in the past", fields={"expires_at": "must be in the future"})
        return expires_at

    @staticmethod
    def _name(name: str | None) -> str:
        name = (name or "").strip()
        if not 1 <= len(name) <= 100:
            raise ValidationFailed("invalid name", fields={"name": "1-100 characters"})
        return name

    # --- lifecycle ---------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        *,
        name: str,
        kind: str = "bearer",
        scopes: list[str] | None = None,
        account_ids: list[int] | None = None,
        ip_allowlist: list[str] | None = None,
        expires_at: datetime | None = None,
        public_key: str | None = None,
        upload_level: str | None = None,
        _generated: bool = False,
    ) -> tuple[ApiKey, str | None]:
        """Create a key; return it and its secret (bearer, hmac) which is never shown again.

        A key made by a key inherits its account binding, IP allowlist and expiry unless narrower
        ones are given. Uploading one's own public key needs the usage level
        ``STRONGROOM_PUBLIC_KEY_UPLOAD_LEVEL``, or ``upload_level`` if higher (a surface's own policy:
        Kalshi's premier); admins may always. Raises ValidationFailed (bad attributes or public key),
        InsufficientScope (more than the creator holds: scopes, accounts, allowlist or expiry),
        InsufficientUsageLevel (uploading a public key below that level), LimitExceeded (too many keys).
        """
        principal.require(WRITE)
        if kind not in KINDS:
            raise ValidationFailed("kind must be bearer, hmac, rsa or ed25519", fields={"kind": "unknown kind"})
        key = ApiKey(
            key_id=str(uuid.uuid4()),
            user_id=principal.user_id,
            name=self._name(name),
            kind=kind,
            scopes=self._scopes(principal, scopes),
            account_ids=self._account_ids(principal, account_ids),
            ip_allowlist=(self._allowlist(ip_allowlist) if ip_allowlist is not None
                          else self._inherited_allowlist(principal)),
            expires_at=self._expiry(expires_at) if expires_at is not None else self._inherited_expiry(principal),
            enabled=True,
        )
        self._not_wider(principal, key, "create")
        secret: str | None = None
        if kind in (KeyKind.RSA, KeyKind.ED25519):
            if not public_key:
                raise ValidationFailed("public_key is required for this kind", fields={"public_key": "required"})
            if not _generated:
                self._may_upload(principal, upload_level)
            try:
                _, _, spki = load_public_key(public_key, expected=kind)
            except KeyFormatError as exc:
                raise ValidationFailed(str(exc), fields={"public_key": str(exc)}) from None
            key.public_key = spki
            key.hint = f"{kind}:{self.hasher.fingerprint('pubkey', spki)[:8]}"
        elif public_key:
            raise ValidationFailed("public_key is only for rsa and ed25519 keys", fields={"public_key": "not allowed"})
        elif kind == KeyKind.BEARER:
            secret = tokens.new_token(self.prefix)
            key.secret_hash = self.hasher.token(secret)
            key.hint = tokens.hint(secret)
        else:
            secret = tokens.new_token(self.hmac_prefix)
            key.hint = tokens.hint(secret)
            _assign(key, self.vault.seal_key_secret(key, {"current": secret}))
        with self.db.session() as session:
            self._take_slot(session, principal.user_id)
            session.add(key)
            session.flush()
            self.audit.record(session, "api_key.create", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"kind": kind, "scopes": key.scopes, "generated": _generated})
            events.record(session, EventType.API_KEY_CREATED, user_id=key.user_id, data=event_data(key))
        return key, secret

    def _may_upload(self, principal: Principal, upload_level: str | None) -> None:
        """Raise InsufficientUsageLevel unless ``principal`` may create a key from its own public key: an admin,
        or a user at the operator's level (``public_key_upload_level``) or ``upload_level``, whichever is higher."""
        needed = max(LEVELS.index(UsageLevel(self.settings.public_key_upload_level)),
                     LEVELS.index(UsageLevel(upload_level or UsageLevel.BASIC)))
        have = LEVELS.index(UsageLevel(principal.usage_level)) if principal.usage_level in LEVELS else -1
        if not principal.is_admin and have < needed:
            raise InsufficientUsageLevel(f"creating a key with your own public key needs the {LEVELS[needed]} "
                                         "usage level")

    def _take_slot(self, session: Session, user_id: int) -> None:
        """Count one more key for ``user_id`` if under the cap; raise LimitExceeded if not (no row counted), or
        NotFound if the user is gone (deleted after the request was authenticated)."""
        cap = self.settings.max_api_keys_per_user
        taken = rowcount(session.execute(
            update(User).where(User.id == user_id, User.api_key_count < cap)
            # updated_at set to itself: a new key is not a change of the user
            .values(api_key_count=User.api_key_count + 1, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        ))
        if taken != 1:
            if session.scalar(select(User.id).where(User.id == user_id)) is None:
                raise NotFound("user not found")
            raise LimitExceeded(f"at most {cap} API keys per user")

    @staticmethod
    def _give_slot(session: Session, user_id: int) -> None:
        """Count one key fewer for ``user_id`` (never below zero)."""
        session.execute(
            update(User).where(User.id == user_id, User.api_key_count > 0)
            .values(api_key_count=User.api_key_count - 1, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )

    def import_public_key(self, principal: Principal, *, name: str, public_key: str, **attrs: Any) -> ApiKey:
        """Create an rsa or ed25519 key from an uploaded PEM, its kind read from the key itself.

        Raises as :meth:`create` does (ValidationFailed for a malformed, weak or unsupported key).
        """
        try:
            kind, _, _ = load_public_key(public_key)
        except KeyFormatError as exc:
            raise ValidationFailed(str(exc), fields={"public_key": str(exc)}) from None
        key, _ = self.create(principal, name=name, kind=kind, public_key=public_key, **attrs)
        return key

    def generate(self, principal: Principal, *, name: str, key_type: str = "rsa", **attrs: Any) -> tuple[ApiKey, str]:
        """Generate a key pair, keep the public key and return the private key once (never stored)."""
        if key_type not in (KeyKind.RSA, KeyKind.ED25519):
            raise ValidationFailed("key_type must be rsa or ed25519", fields={"key_type": "rsa or ed25519"})
        principal.require(WRITE)
        private_pem, public_pem = generate_keypair(key_type)
        key, _ = self.create(principal, name=name, kind=key_type, public_key=public_pem, _generated=True, **attrs)
        return key, private_pem

    def _owned(self, session: Session, principal: Principal, key_id: str, *, claim: bool = False) -> ApiKey:
        """Return the caller's key ``key_id``; raise NotFound for unknown ids and other users' keys.

        With ``claim``, the row's write lock is taken first (a no-op UPDATE: the row lock on PostgreSQL,
        the database's write lock on SQLite), so the version read is still current when the change
        is written. The version check stays the guard; the claim only spares retries.
        """
        if claim:
            session.execute(text("UPDATE api_keys SET version = version WHERE key_id = :key_id"),
                            {"key_id": str(key_id)})
        key = session.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id))
                             .execution_options(populate_existing=True))
        if key is None or key.user_id != principal.user_id or not self.visible(principal, key):
            raise NotFound("API key not found")
        return key

    @staticmethod
    def visible(principal: Principal, key: ApiKey) -> bool:
        """Return True if ``key`` concerns only accounts the principal sees: a key bound to accounts sees
        the keys bound within its accounts (itself included), never an unbound key or one bound elsewhere."""
        return accounts_within(key.account_ids, principal.account_ids)

    def _decided_again(self, step: Callable[[Session], T]) -> T:
        """Run ``step`` in a transaction; run it again (a few times) while the key changed under it.

        Returns what ``step`` returns. Raises what it raises, or Conflict if the key kept changing.
        """
        for _ in range(CHANGE_ATTEMPTS):
            try:
                with self.db.session() as session:
                    return step(session)
            except StaleDataError:  # the key's version moved on (or it is gone): decide again on what is there
                continue
        raise Conflict("the API key was changed by another request at the same time; try again")

    def get(self, principal: Principal, key_id: str) -> ApiKey:
        """Return one of the caller's keys; NotFound for unknown ids, other users' keys and, for a key
        bound to accounts, keys beyond its binding (see :meth:`visible`).

        Reading is not acting: an unbound key may read any key of its user (as listing shows them all,
        which Kalshi's clients rely on); changing, rolling and deleting are what the power rule guards.
        """
        principal.require(READ)
        with self.db.session() as session:
            return self._owned(session, principal, key_id)

    def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[ApiKey]:
        """Return a page of the caller's keys that it sees (see :meth:`visible`), oldest first."""
        principal.require(READ)
        query = select(ApiKey).where(ApiKey.user_id == principal.user_id)
        # a bound caller's: decided on the rows read (a user's keys are bounded by the per-user cap), not on
        # ids chosen by an earlier statement, which listed a key rebound beyond the caller's accounts meanwhile
        keep = None if principal.account_ids is None else functools.partial(self.visible, principal)
        with self.db.session() as session:
            return paginate(session, query, ApiKey.id, cursor, limit, keep=keep)

    def list_all(self, principal: Principal) -> builtins.list[ApiKey]:
        """Return all the caller's keys that it sees (bounded by the per-user cap; see :meth:`visible`)."""
        principal.require(READ)
        with self.db.session() as session:
            keys = session.scalars(select(ApiKey).where(ApiKey.user_id == principal.user_id).order_by(ApiKey.id))
            return [k for k in keys if self.visible(principal, k)]

    # --- by number (the row id): for surfaces whose key ids are numbers (TradrAPI) -------------------
    #
    # These read within the calling key's account binding, as :meth:`get` and :meth:`list` do (a key
    # bound to accounts reads only keys bound within them), but answer a key beyond it Forbidden, as
    # TradrAPI does, where :meth:`get` answers NotFound. Changes and deletes go through :meth:`update`
    # and :meth:`delete`, so the rule of key power applies to them unchanged.

    def require_user(self, principal: Principal, user_id: int) -> None:
        """Raise Forbidden unless ``user_id`` is the caller's own user (keys are only ever one's own)."""
        if user_id != principal.user_id:
            raise Forbidden("a key or token acts only for its own user")

    def require_account(self, principal: Principal, account_id: int) -> None:
        """Raise unless the caller may act on exchange account ``account_id``.

        Raises Forbidden (the calling key is bound to other accounts: checked first, so a bound key
        learns nothing about accounts outside its binding), NotFound (not a live account of the
        caller's user).
        """
        if not principal.sees_account(account_id):
            raise Forbidden("this key acts only on the accounts it is bound to")
        if not valid_id(account_id) or not self.accounts.owned_ids(principal.user_id, [account_id]):
            raise NotFound("exchange account not found")

    @staticmethod
    def _in_reach(principal: Principal, key: ApiKey) -> None:
        """Raise Forbidden if ``key`` is bound to accounts beyond the calling key's binding."""
        if not accounts_within(key.account_ids, principal.account_ids):
            raise Forbidden("this key acts only on the accounts it is bound to")

    def _by_number(self, principal: Principal, number: int, kind: str | None, single_account: bool) -> ApiKey:
        """Return the caller's key whose row id is ``number``; NotFound for unknown ids, other users'
        keys, keys of another ``kind`` and (``single_account``) keys not bound to exactly one account."""
        if not valid_id(number):
            raise NotFound("API key not found")
        with self.db.session() as session:
            key = session.get(ApiKey, number)
        if (key is None or key.user_id != principal.user_id or (kind is not None and key.kind != kind)
                or (single_account and (key.account_ids is None or len(key.account_ids) != 1))):
            raise NotFound("API key not found")
        return key

    def get_number(self, principal: Principal, number: int, *, kind: str | None = None,
                   single_account: bool = False) -> ApiKey:
        """Return the caller's key whose row id is ``number``, if the calling key's binding reaches it.

        ``kind`` and ``single_account`` narrow which keys count (others are NotFound). Raises
        InsufficientScope (no ``read``), NotFound, Forbidden (bound to accounts the calling key is not).
        """
        principal.require(READ)
        key = self._by_number(principal, number, kind, single_account)
        self._in_reach(principal, key)
        return key

    def update_number(self, principal: Principal, number: int, changes: dict[str, Any], *, kind: str | None = None,
                      single_account: bool = False) -> ApiKey:
        """:meth:`update` the caller's key whose row id is ``number`` (found as :meth:`get_number` finds it).

        Returns the key as written. Raises as :meth:`update` does.
        """
        principal.require(WRITE)
        key = self._by_number(principal, number, kind, single_account)
        self._not_wider(principal, key, "change")  # a key beyond the binding: refused (403), as TradrAPI has it
        return self.update(principal, key.key_id, changes)

    def delete_number(self, principal: Principal, number: int, *, kind: str | None = None,
                      single_account: bool = False) -> None:
        """:meth:`delete` the caller's key whose row id is ``number`` (found as :meth:`get_number` finds it).

        Raises as :meth:`delete` does.
        """
        principal.require(DELETE)
        key = self._by_number(principal, number, kind, single_account)
        self._not_wider(principal, key, "delete")  # a key beyond the binding: refused (403), as TradrAPI has it
        self.delete(principal, key.key_id)

    def numbered_page(self, principal: Principal, *, page: int = 1, limit: int = 10, sort_by: str = "id",
                      descending: bool = True, kind: str | None = None,
                      bound_to: int | None = None) -> tuple[builtins.list[ApiKey], int]:
        """Return one page (numbered from 1) of the caller's keys in the calling key's reach, and their total.

        ``bound_to``: only the keys bound to exactly that one account (which the caller must reach,
        see :meth:`require_account`). Sorted by ``sort_by`` (one of :data:`SORT_FIELDS`; a key never
        used counts as the least recently used; ties by id), in memory: a user's keys are bounded by
        the per-user cap.
        Raises InsufficientScope (no ``read``), ValidationFailed (page < 1, limit outside 1..100,
        unknown sort field), Forbidden or NotFound (``bound_to``).
        """
        principal.require(READ)
        if not isinstance(page, int) or not 1 <= page <= 2**31 - 1:
            raise ValidationFailed("page must be at least 1", fields={"page": "at least 1"})
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE_LIMIT}",
                                   fields={"limit": f"1..{MAX_PAGE_LIMIT}"})
        if sort_by not in SORT_FIELDS:
            raise ValidationFailed("unknown sort field", fields={"sort_by": f"one of {', '.join(SORT_FIELDS)}"})
        if bound_to is not None:
            self.require_account(principal, bound_to)
        query = select(ApiKey).where(ApiKey.user_id == principal.user_id)
        if kind is not None:
            query = query.where(ApiKey.kind == kind)
        with self.db.session() as session:
            keys = [k for k in session.scalars(query)
                    if accounts_within(k.account_ids, principal.account_ids)
                    and (bound_to is None or k.account_ids == [bound_to])]

        def order(key: ApiKey) -> tuple[bool, Any, int]:
            value = getattr(key, sort_by)
            return (value is not None, value if value is not None else 0, key.id)

        keys.sort(key=order, reverse=descending)
        start = (page - 1) * limit
        return keys[start:start + limit], len(keys)

    def list_any(self, principal: Principal, *, user_id: int | None = None, cursor: str | None = None,
                 limit: int = 50) -> Page[ApiKey]:
        """Admins (the operator's command line): a page of every user's keys, or ``user_id``'s, oldest first.

        Raises Forbidden (not an admin), ValidationFailed (cursor, limit).
        """
        principal.require(READ)
        if not principal.is_admin:
            raise Forbidden("only admins see other users' keys")
        query = select(ApiKey)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        with self.db.session() as session:
            return paginate(session, query, ApiKey.id, cursor, limit)

    def get_any(self, principal: Principal, key_id: str) -> ApiKey:
        """Admins: any user's key. Raises Forbidden (not an admin), NotFound."""
        principal.require(READ)
        if not principal.is_admin:
            raise Forbidden("only admins see other users' keys")
        with self.db.session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id)))
            if key is None:
                raise NotFound("API key not found")
            return key

    def update(self, principal: Principal, key_id: str, changes: dict[str, Any]) -> ApiKey:
        """Change name, scopes, account_ids, ip_allowlist, enabled or expires_at. Takes effect everywhere within 1 s.

        Returns the key as written. Raises NotFound, ValidationFailed, InsufficientScope (the key is,
        or would become, more powerful than the calling key), Conflict (it kept changing meanwhile).
        """
        principal.require(WRITE)

        def step(session: Session) -> ApiKey:
            key = self._owned(session, principal, key_id, claim=True)
            self._not_wider(principal, key, "change")
            if "name" in changes:
                key.name = self._name(changes["name"])
            if "scopes" in changes:
                key.scopes = self._scopes(principal, changes["scopes"])
            if "account_ids" in changes:
                key.account_ids = self._account_ids(principal, changes["account_ids"])
            if "ip_allowlist" in changes:
                key.ip_allowlist = self._allowlist(changes["ip_allowlist"])
            if "enabled" in changes:
                if not isinstance(changes["enabled"], bool):
                    raise ValidationFailed("enabled must be a boolean", fields={"enabled": "boolean"})
                key.enabled = changes["enabled"]
            if "expires_at" in changes:
                key.expires_at = self._expiry(changes["expires_at"])
            self._not_wider(principal, key, "make")
            key.updated_at = utcnow()
            session.flush()  # WHERE version = <read>: StaleDataError if another change came first
            self.audit.record(session, "api_key.update", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"fields": sorted(changes)})
            return key

        key = self._decided_again(step)
        self._changed(key.key_id)
        return key

    def roll(self, principal: Principal, key_id: str, grace_seconds: int = 0) -> tuple[ApiKey, str]:
        """Issue a new secret; the old one stays valid for ``grace_seconds`` (0: revoked now).

        Returns the key and the new secret (shown once). Raises NotFound, BadRequest (public-key
        keys are replaced by creating a new key), ValidationFailed, InsufficientScope (more powerful
        than the calling key), Conflict (it kept changing meanwhile).
        """
        principal.require(WRITE)
        if not isinstance(grace_seconds, int) or not 0 <= grace_seconds <= 30 * 24 * 3600:
            raise ValidationFailed("grace_seconds must be 0..2592000", fields={"grace_seconds": "0..2592000"})

        def step(session: Session) -> tuple[ApiKey, str]:
            now = utcnow()
            # from the exact time, not utcnow()'s whole second: that would cut up to 1 s off the grace
            until = datetime.now(UTC) + timedelta(seconds=grace_seconds) if grace_seconds else None
            key = self._owned(session, principal, key_id, claim=True)
            self._not_wider(principal, key, "roll")
            if key.kind == KeyKind.BEARER:
                secret = tokens.new_token(self.prefix)
                key.previous_secret_hash = key.secret_hash if until else None
                key.previous_expires_at = until
                key.secret_hash = self.hasher.token(secret)
            elif key.kind == KeyKind.HMAC:
                secret = tokens.new_token(self.hmac_prefix)
                doc = {"current": secret}
                if until:
                    doc["previous"] = self.vault.open_key_secret(key)["current"]
                key.previous_expires_at = until
                _assign(key, self.vault.seal_key_secret(key, doc))
            else:
                raise BadRequest("public-key keys cannot be rolled; create or generate a new key and delete this one")
            key.hint = tokens.hint(secret)
            key.updated_at = now
            session.flush()  # WHERE version = <read>: StaleDataError if another change came first
            self.audit.record(session, "api_key.roll", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"grace_seconds": grace_seconds})
            events.record(session, EventType.API_KEY_ROLLED, user_id=key.user_id, data={
                **event_data(key), "grace_seconds": grace_seconds,
                "previous_valid_until": until.replace(microsecond=0).isoformat() if until else None})
            return key, secret

        key, secret = self._decided_again(step)
        self._changed(key.key_id)
        return key, secret

    def delete(self, principal: Principal, key_id: str) -> None:
        """Delete a key at once. Of concurrent deletes of one key exactly one succeeds.

        Raises NotFound (unknown, another user's, or already deleted), InsufficientScope (more
        powerful than the calling key), Conflict (it kept changing meanwhile).
        """
        principal.require(DELETE)

        def step(session: Session) -> None:
            key = self._owned(session, principal, key_id)
            self._not_wider(principal, key, "delete")
            # the user's row first, the key's second: the order of key creation and of user deletion
            # (whose cascade reaches the keys), so these never deadlock on PostgreSQL
            self._give_slot(session, key.user_id)
            session.delete(key)
            session.flush()  # DELETE ... WHERE version = <read>: StaleDataError if changed or deleted meanwhile
            self.audit.record(session, "api_key.delete", "ok", principal=principal, target=f"api_key:{key_id}",
                              details={"kind": key.kind})
            events.record(session, EventType.API_KEY_REVOKED, user_id=key.user_id, data=event_data(key))

        self._decided_again(step)
        self._changed(str(key_id))

    # --- notices (the scheduled expiry scan, the failure budget) ----------------------------------

    def scan_expiry(self, now: datetime | None = None, batch: int = 200) -> tuple[int, int]:
        """Write ``api_key.expiring`` for each key expiring within ``STRONGROOM_KEY_EXPIRY_NOTICE_DAYS`` and
        ``api_key.expired`` for each key past its expiry, each ONCE per key and expiry (a mark per key and
        expiry time: a key given a new expiry is noticed again). Returns ``(expiring, expired)`` written now.

        Idempotent and safe to run concurrently: of two scans at once exactly one writes each event
        (:func:`strongroom.events.record_once`). One transaction per ``batch`` keys. Keys that expired
        more than :data:`EXPIRED_LOOKBACK` ago are no news (and not scanned again and again).
        """
        now = now or utcnow()
        notice = timedelta(days=self.settings.key_expiry_notice_days)
        written = [0, 0]
        last = 0
        while True:
            with self.db.session() as session:
                keys = list(session.scalars(
                    select(ApiKey).where(ApiKey.expires_at.is_not(None), ApiKey.expires_at <= now + notice,
                                         ApiKey.expires_at > now - EXPIRED_LOOKBACK, ApiKey.id > last)
                    .order_by(ApiKey.id).limit(batch)))
                due = {}
                for key in keys:
                    assert key.expires_at is not None
                    kind = EventType.API_KEY_EXPIRED if key.expires_at <= now else EventType.API_KEY_EXPIRING
                    due[f"{kind}:{key.key_id}:{int(key.expires_at.timestamp())}"] = (kind, key)
                for mark in events.marked(session, due):  # noticed before: not tried again one by one
                    del due[mark]
                for mark, (kind, key) in due.items():
                    assert key.expires_at is not None
                    data = event_data(key)
                    if kind == EventType.API_KEY_EXPIRING:
                        data["seconds_left"] = int((key.expires_at - now).total_seconds())
                    if events.record_once(session, mark, kind, user_id=key.user_id, data=data) is not None:
                        written[kind == EventType.API_KEY_EXPIRED] += 1
            if len(keys) < batch:
                return written[0], written[1]
            last = keys[-1].id

    def budget_exhausted(self, key_id: str, window_seconds: int, window_ends: float) -> bool:
        """Write ``api_key.failure_budget_exhausted`` for ``key_id`` once per exhaustion window (its own
        transaction: the budget is counted in memory or Redis, not in a database change); return whether it
        was written now. The window is named by its end rounded to ``window_seconds``, so processes that count
        the same window write one event. A key id that is no key writes nothing.
        """
        window = int(window_ends // max(1, window_seconds))
        with self.db.session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id)[:64]))
            if key is None:
                return False
            mark = f"{EventType.API_KEY_FAILURE_BUDGET_EXHAUSTED}:{key.key_id}:{window}"
            return events.record_once(session, mark, EventType.API_KEY_FAILURE_BUDGET_EXHAUSTED, user_id=key.user_id,
                                      data={"key_id": key.key_id, "name": key.name,
                                            "limit": self.settings.auth_failures_per_key,
                                            "window_ends": datetime.fromtimestamp(window_ends, UTC)
                                            .replace(microsecond=0).isoformat()}) is not None

    def prune_usage(self, before: datetime, batch: int = 5000) -> int:
        """Delete key-usage rows of hours before ``before``, ``batch`` per transaction; return how many."""
        return delete_in_batches(self.db, KeyUsage.id, KeyUsage.hour < before, batch)

    def _changed(self, key_id: str) -> None:
        for listener in self.listeners:
            listener(key_id)

    # --- verification support ------------------------------------------------------------------

    @retry_read_once
    def find_key_id_by_secret_hash(self, digest: str) -> str | None:
        """Return the key id whose current (or in-grace previous) bearer hash is ``digest``."""
        with self.db.session() as session:
            return session.scalar(
                select(ApiKey.key_id).where(
                    or_(ApiKey.secret_hash == digest,
                        (ApiKey.previous_secret_hash == digest) & (ApiKey.previous_expires_at > utcnow()))
                ).limit(1)
            )

    @retry_read_once
    def load_record(self, key_id: str) -> KeyRecord | None:
        """Return the verification record of ``key_id``, or None if it does not exist."""
        with self.db.session() as session:
            row = session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_id == key_id)
            ).first()
            if row is None:
                return None
            key, user = row
            prev_until = _epoch(key.previous_expires_at)
            hashes: tuple[tuple[str, float | None], ...] = ()
            secrets: tuple[tuple[str, float | None], ...] = ()
            if key.kind == KeyKind.BEARER:
                if key.secret_hash:  # always set on a bearer key (the column is null for the other kinds)
                    hashes = ((key.secret_hash, None),)
                if key.previous_secret_hash and prev_until:
                    hashes += ((key.previous_secret_hash, prev_until),)
            elif key.kind == KeyKind.HMAC:
                doc = self.vault.open_key_secret(key)
                secrets = ((doc["current"], None),)
                if doc.get("previous") and prev_until:
                    secrets += ((doc["previous"], prev_until),)
            return KeyRecord(
                key_id=key.key_id,
                kind=key.kind,
                user=snapshot(user),
                scopes=frozenset(key.scopes),
                account_ids=frozenset(key.account_ids) if key.account_ids is not None else None,
                networks=parse_networks(key.ip_allowlist),
                expires_at=_epoch(key.expires_at),
                enabled=key.enabled and not user.disabled,  # a disabled user's keys are refused as disabled
                secret_hashes=hashes,
                hmac_secrets=secrets,
                verifier=verifier_from_pem(key.public_key) if key.public_key else None,
            )

    def record_last_used(self, used: dict[str, float]) -> None:
        """Write last_used_at for a batch of keys (called by the usage recorder, not per request)."""
        from datetime import UTC

        table = ApiKey.__table__
        with self.db.session() as session:
            for key_id, at in used.items():
                # updated_at is set to itself so the column's onupdate does not fire: use is not an update
                session.execute(
                    table.update().where(table.c.key_id == key_id)
                    .values(last_used_at=datetime.fromtimestamp(at, UTC).replace(microsecond=0),
                            updated_at=table.c.updated_at)
                )


    def record_usage(self, counts: Mapping[tuple[str, int, str], int]) -> None:
        """Add a batch of verification counts ``{(key id, epoch hour, outcome): n}`` to key_usage
        (one upsert per row; a key deleted meanwhile is skipped, not an error)."""
        dialect = self.db.engine.dialect.name
        if dialect == "postgresql":  # (imported here: the dialect is not loaded on SQLite)
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        table = KeyUsage.__table__
        with self.db.session() as session:
            for (key_id, hour, outcome), n in counts.items():
                at = datetime.fromtimestamp(hour * 3600, UTC)
                source = select(literal(key_id), literal(at, TZDateTime()), literal(outcome), literal(n)).where(
                    exists().where(ApiKey.key_id == key_id))
                statement = insert(table).from_select(["key_id", "hour", "outcome", "count"], source)
                session.execute(statement.on_conflict_do_update(
                    index_elements=["key_id", "hour", "outcome"],
                    set_={"count": table.c.count + statement.excluded.count}))

    def usage(self, principal: Principal, key_id: str, since: datetime | None = None,
              until: datetime | None = None) -> builtins.list[tuple[datetime, str, int]]:
        """Return ``(hour, outcome, count)`` rows of one of the caller's keys, oldest first.

        Raises NotFound (unknown or another user's key), InsufficientScope, ValidationFailed (range).
        """
        key = self.get(principal, key_id)
        if since is not None and until is not None and since > until:
            raise ValidationFailed("from is after to", fields={"from": "must not be after to"})
        query = select(KeyUsage.hour, KeyUsage.outcome, KeyUsage.count).where(KeyUsage.key_id == key.key_id)
        if since is not None:
            query = query.where(KeyUsage.hour >= since.replace(minute=0, second=0, microsecond=0))
        if until is not None:
            query = query.where(KeyUsage.hour <= until)
        with self.db.session() as session:
            return [(h, o, c) for h, o, c in session.execute(query.order_by(KeyUsage.hour, KeyUsage.outcome))]


def event_data(key: ApiKey) -> dict[str, Any]:
    """Return what an event says about ``key``: its ids, name, kind, scopes, binding and expiry (no secret,
    no hint)."""
    return {"key_id": key.key_id, "name": key.name, "kind": str(key.kind), "scopes": list(key.scopes),
            "account_ids": list(key.account_ids) if key.account_ids is not None else None,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None}


def _assign(row: Base, values: dict[str, Any]) -> None:
    """Set each ``column: value`` of ``values`` on an ORM ``row``, every one written by the next flush.

    The ORM leaves out of an UPDATE the attributes whose new value equals the one it loaded; sealed
    columns must be written together, or a ``kek_version`` equal to the stale loaded one would stay as
    a concurrent re-wrap left it and no longer match the new wrapped data key.
    """
    for column, value in values.items():
        setattr(row, column, value)
        flag_modified(row, column)
