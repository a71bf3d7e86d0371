"""Users: accounts of people, argon2id passwords, usage levels, and password sign-in."""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from cachetools import LRUCache
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom import events
from strongroom.audit.services import AuditService
from strongroom.crypto.passwords import Passwords
from strongroom.crypto.tokens import Hasher
from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import AuthMethod, EventType, UsageLevel
from strongroom.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    SignInRefused,
    ValidationFailed,
)
from strongroom.models import ApiKey, AuthSession, ExchangeAccount, User
from strongroom.pagination import Page, paginate, valid_id
from strongroom.principal import Principal
from strongroom.ratelimit import RateLimiter
from strongroom.scopes import DELETE, READ, WRITE
from strongroom.settings import Settings

USAGE_LEVELS: tuple[str, ...] = tuple(UsageLevel)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class UserSnapshot:
    """What authentication needs to know of a user, cached briefly in memory."""

    id: int
    username: str
    is_admin: bool
    usage_level: str
    password_hash: str = field(repr=False)  # never in a log line or a traceback's locals
    disabled: bool = False  # every credential of a disabled user is refused (``disabled``)
    # principals already built from this snapshot, by (client IP, scheme): one per caller, not per request
    _principals: dict[tuple[str | None, AuthMethod], Principal] = field(default_factory=dict, init=False,
                                                                        repr=False, compare=False)

    def principal(self, *, client_ip: str | None, scheme: AuthMethod) -> Principal:
        """Return the principal of this user for a request from ``client_ip`` authenticated by ``scheme``."""
        memo = self._principals.get((client_ip, scheme))
        if memo is None:
            if len(self._principals) > 1000:  # a snapshot lives for the cache TTL; this bounds a burst of IPs
                self._principals.clear()
            memo = self._principals[(client_ip, scheme)] = Principal(
                user_id=self.id, username=self.username, is_admin=self.is_admin, usage_level=self.usage_level,
                client_ip=client_ip, scheme=scheme, password_hash=self.password_hash)
        return memo


def snapshot(user: User) -> UserSnapshot:
    return UserSnapshot(user.id, user.username, user.is_admin, user.usage_level, user.password_hash,
                        bool(user.disabled))


def hold_user(session: Session, user_id: int, *, share: bool = False) -> None:
    """Hold user ``user_id``'s row until ``session``'s transaction ends. PostgreSQL: ``FOR UPDATE``, which a
    foreign key's check on the row (a key or an account added for the user) and any change of the user wait
    for; with ``share``, ``FOR SHARE``: only a change of the user waits. SQLite: a no-op write (``updated_at``
    kept) takes the database's write lock. A user that does not exist holds nothing."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update(read=share))
    else:
        session.execute(update(User).where(User.id == user_id).values(username=User.username, updated_at=User.updated_at)
                        .execution_options(synchronize_session=False))


class UserService:
    def __init__(
        self, db: Database, settings: Settings, audit: AuditService, limiter: RateLimiter, hasher: Hasher
    ) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.limiter = limiter
        self.hasher = hasher
        self.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
        # memory_key(username, password) -> (checked_at, snapshot); no plaintext kept. Least recently
        # used out first; guarded by a lock (written from worker threads).
        self._password_cache: LRUCache[bytes, tuple[float, UserSnapshot]] = LRUCache(maxsize=10_000)
        self._password_lock = threading.Lock()

    # --- management ----------------------------------------------------------------------

    def create(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        is_admin: bool = False,
        usage_level: str = "basic",
        actor: Principal | None = None,
    ) -> User:
        """Create a user. Raises ValidationFailed (bad username/password/level), Conflict (taken),
        Forbidden (actor is not an admin)."""
        if actor is not None:
            actor.require(WRITE)
            if not actor.is_admin:
                raise Forbidden("only admins manage users")
        fields = {}
        if not USERNAME_RE.match(username or ""):
            fields["username"] = "1-64 characters: letters, digits, _ . @ -"
        if not isinstance(password, str) or not 8 <= len(password) <= 1024:
            fields["password"] = "8-1024 characters"
        if usage_level not in USAGE_LEVELS:
            fields["usage_level"] = f"one of {', '.join(USAGE_LEVELS)}"
        if fields:
            raise ValidationFailed("invalid user", fields=fields)
        user = User(
            username=username,
            email=email,
            password_hash=self.passwords.hash(password),
            is_admin=is_admin,
            usage_level=usage_level,
        )
        try:
            with self.db.session() as session:
                session.add(user)
                session.flush()
                self.audit.record(
                    session, "user.create", "ok", principal=actor, target=f"user:{user.id}",
                    details={"username": username, "is_admin": is_admin},
                )
        except IntegrityError:
            raise Conflict("a user with that username already exists") from None
        return user

    def bootstrap_admin(self) -> tuple[str, str] | None:
        """If there is no user at all, create admin ``admin`` and return (username, password) once."""
        with self.db.session() as session:
            if session.scalar(select(func.count(User.id))):
                return None
        password = secrets.token_urlsafe(18)
        try:
            self.create("admin", password, is_admin=True, usage_level="premier")
        except Conflict:
            return None  # another process won the race
        return "admin", password

    def get(self, principal: Principal, user_id: int) -> User:
        """Return a user: oneself, or anyone for admins. Raises NotFound otherwise."""
        principal.require(READ)
        if not principal.acts_for(user_id):
            raise NotFound("user not found")
        with self.db.session() as session:
            user = session.get(User, user_id) if valid_id(user_id) else None
            if user is None:
                raise NotFound("user not found")
            return user

    def get_by_public_id(self, principal: Principal, public_id: uuid.UUID) -> User:
        """Return the user whose stable UUID is ``public_id``: oneself, or anyone for admins.

        Raises NotFound otherwise (never telling whether someone else has that id).
        """
        principal.require(READ)
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.public_id == public_id))
        if user is None or not principal.acts_for(user.id):
            raise NotFound("user not found")
        return user

    def public_ids(self, user_ids: Iterable[int]) -> dict[int, uuid.UUID]:
        """Return the stable UUID of each of ``user_ids`` that exists (internal: surfaces show owners by it)."""
        ids = sorted({i for i in user_ids if valid_id(i)})
        if not ids:
            return {}
        with self.db.session() as session:
            return {row.id: row.public_id for row in session.execute(
                select(User.id, User.public_id).where(User.id.in_(ids)))}

    def exists(self, user_id: int) -> bool:
        if not valid_id(user_id):
            return False
        with self.db.session() as session:
            return session.get(User, user_id) is not None

    def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[User]:
        """Return users (admins only). Raises Forbidden."""
        principal.require(READ)
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        with self.db.session() as session:
            return paginate(session, select(User), User.id, cursor, limit)

    def delete(self, principal: Principal, user_id: int) -> None:
        """Delete a user and everything they own (admins only; not oneself), recording the admin-only event
        ``user.deleted`` (their ids, username, and the ids of the keys and accounts that went with them) in the
        same transaction. Raises Forbidden, NotFound."""
        principal.require(DELETE)
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        if principal.user_id == user_id:
            raise Forbidden("admins cannot delete themselves")
        if not valid_id(user_id):
            raise NotFound("user not found")
        with self.db.session() as session:
            # held first, so that no key or account is added to them between the reading of what goes with
            # them and the delete (one would go unnamed)
            hold_user(session, user_id)
            user = session.get(User, user_id)
            if user is None:
                raise NotFound("user not found")
            # what goes with them, for whoever keeps a copy (a gateway's key cache, a platform's account list)
            data = {"user_id": user.id, "public_id": str(user.public_id), "username": user.username,
                    "key_ids": sorted(session.scalars(select(ApiKey.key_id).where(ApiKey.user_id == user_id))),
                    "account_ids": sorted(session.scalars(select(ExchangeAccount.id)
                                                          .where(ExchangeAccount.user_id == user_id)))}
            session.delete(user)
            session.flush()  # their webhook endpoints are gone before the event fans out
            events.record(session, EventType.USER_DELETED, user_id=None, data=data)
            self.audit.record(session, "user.delete", "ok", principal=principal, target=f"user:{user_id}")

    def set_usage_level(self, principal: Principal, user_id: int, level: str) -> User:
        """Set a user's usage level (admins only). Raises Forbidden, NotFound, ValidationFailed."""
        principal.require(WRITE)
        if not principal.is_admin:
            raise Forbidden("only admins set usage levels")
        if level not in USAGE_LEVELS:
            raise ValidationFailed("invalid usage level", fields={"usage_level": f"one of {', '.join(USAGE_LEVELS)}"})
        with self.db.session() as session:
            user = session.get(User, user_id) if valid_id(user_id) else None
            if user is None:
                raise NotFound("user not found")
            user.usage_level = UsageLevel(level)
            self.audit.record(session, "user.usage_level", "ok", principal=principal, target=f"user:{user_id}",
                              details={"usage_level": level})
            return user

    def set_disabled(self, principal: Principal, user_id: int, disabled: bool) -> User:
        """Disable a user, or enable a disabled one (admins only; not oneself).

        A disabled user cannot sign in, and every key, session and refresh token of theirs is refused
        as ``disabled`` (within ``key_cache_ttl_seconds`` on a running server) until enabled again;
        nothing is revoked, so enabling brings them all back. Audited ``user.disable``/``user.enable``
        with whether anything changed. Raises Forbidden, NotFound.
        """
        principal.require(WRITE)
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        if principal.user_id == user_id:
            raise Forbidden("admins cannot disable or enable themselves")
        with self.db.session() as session:
            if not valid_id(user_id) or session.get(User, user_id) is None:
                raise NotFound("user not found")
            changed = rowcount(session.execute(
                update(User).where(User.id == user_id, User.disabled.is_not(disabled))
                .values(disabled=disabled, updated_at=utcnow()).execution_options(synchronize_session=False)))
            self.audit.record(session, "user.disable" if disabled else "user.enable", "ok", principal=principal,
                              target=f"user:{user_id}", details={"changed": changed == 1})
            user = session.get(User, user_id, populate_existing=True)
            if user is None:  # deleted meanwhile
                raise NotFound("user not found")
            return user

    def by_username(self, principal: Principal, username: str) -> User:
        """Return the user named ``username``: oneself, or anyone for admins. Raises NotFound otherwise."""
        principal.require(READ)
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.username == str(username)[:64]))
            if user is None or not principal.acts_for(user.id):
                raise NotFound(f"no user named {username!r}")
            return user

    def usernames(self, principal: Principal, user_ids: Iterable[int]) -> dict[int, str]:
        """Return ``{id: username}`` for those of ``user_ids`` that exist (admins only). Raises Forbidden."""
        principal.require(READ)
        if not principal.is_admin:
            raise Forbidden("only admins manage users")
        ids = sorted({i for i in user_ids if valid_id(i)})
        if not ids:
            return {}
        with self.db.session() as session:
            rows = session.execute(select(User.id, User.username).where(User.id.in_(ids))).tuples()
            return {user_id: username for user_id, username in rows}

    def set_password(self, principal: Principal, user_id: int, password: str) -> User:
        """Set a user's password (admins only) and end every session the user has.

        The recovery path for a lost password (``strongroom users set-password``). A running
        server's in-memory sign-in cache may accept the old password for at most
        ``key_cache_ttl_seconds`` more. Raises Forbidden, NotFound, ValidationFailed.
        """
        principal.require(WRITE)
        if not principal.is_admin:
            raise Forbidden("only admins set other users' passwords")
        if not isinstance(password, str) or not 8 <= len(password) <= 1024:
            raise ValidationFailed("invalid password", fields={"password": "8-1024 characters"})
        password_hash = self.passwords.hash(password)
        with self.db.session() as session:
            user = session.get(User, user_id) if valid_id(user_id) else None
            if user is None:
                raise NotFound("user not found")
            user.password_hash = password_hash
            ended = rowcount(session.execute(
                update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ))
            self.audit.record(session, "user.password", "ok", principal=principal, target=f"user:{user_id}",
                              details={"sessions_ended": ended})
            return user

    def principal_for(self, principal: Principal, user_id: int) -> Principal:
        """Return the principal an admin uses to act as ``user_id`` on what only its owner manages
        (API keys): the user's own rights, so nothing made this way exceeds them, with the admin's
        scheme and client address (the audit records the user, from that address).

        Raises Forbidden (not an admin), NotFound.
        """
        if not principal.is_admin:
            raise Forbidden("only admins act for other users")
        snap = self.load_snapshot(user_id) if valid_id(user_id) else None
        if snap is None:
            raise NotFound("user not found")
        return snap.principal(client_ip=principal.client_ip, scheme=principal.scheme)

    def load_snapshot(self, user_id: int) -> UserSnapshot | None:
        with self.db.session() as session:
            user = session.get(User, user_id)
            return snapshot(user) if user else None

    # --- sign-in ---------------------------------------------------------------------------

    async def check_login_allowed(self, client_ip: str | None) -> None:
        """Raise RateLimited if ``client_ip`` has failed to sign in too often lately."""
        await self.limiter.check(self.settings.login_failures_per_ip, "login-fail", client_ip or "-")

    async def note_login_failure(self, client_ip: str | None) -> None:
        try:
            await self.limiter.hit(self.settings.login_failures_per_ip, "login-fail", client_ip or "-")
        except RateLimited:
            pass

    def verify_password(self, username: str, password: str) -> UserSnapshot | None:
        """Return the user if ``password`` is right, else None. Blocking (argon2): call from a thread.

        A recent success is remembered under a keyed digest of the pair, so Basic auth on every
        request costs one argon2 verification per TTL, not one per request; a changed password
        hash or a deleted user is noticed on the next refresh.
        """
        memo = self.hasher.memory_key("pw", username, password)
        with self._password_lock:
            cached = self._password_cache.get(memo)
        now = time.monotonic()
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            snap = snapshot(user) if user else None
        if cached and snap and snap.password_hash == cached[1].password_hash:
            with self._password_lock:
                self._password_cache[memo] = (now, snap)
            return snap
        with self._password_lock:
            self._password_cache.pop(memo, None)
        # an unknown user still costs one verification (against a dummy hash)
        if not self.passwords.verify(snap.password_hash if snap else None, password) or snap is None:
            return None
        with self._password_lock:
            self._password_cache[memo] = (now, snap)
        return snap

    def _audit_failed_sign_in(self, username: str, client_ip: str | None, scheme: AuthMethod,
                              reason: str | None = None) -> None:
        """Audit a failed sign-in under the user it targeted (if any), so they can see it too."""
        with self.db.session() as session:
            user_id = session.scalar(select(User.id).where(User.username == username[:64]))
        details = {"username": username[:64], "scheme": str(scheme)}
        if reason:
            details["reason"] = reason
        self.audit.record_now("auth.sign_in", "failed", user_id=user_id, client_ip=client_ip, details=details)

    async def sign_in(self, username: str, password: str, client_ip: str | None, *, scheme: AuthMethod) -> Principal:
        """Return the principal for a username and password.

        Raises RateLimited when this IP failed too often, Unauthenticated on a wrong pair.
        Successes and failures are audited.
        """
        from anyio import to_thread

        with self._password_lock:
            cached = self._password_cache.get(self.hasher.memory_key("pw", username, password))
        if cached and time.monotonic() - cached[0] < self.settings.key_cache_ttl_seconds and not cached[1].disabled:
            return cached[1].principal(client_ip=client_ip, scheme=scheme)
        await self.check_login_allowed(client_ip)
        snap = await to_thread.run_sync(self.verify_password, username, password)
        if snap is None:
            await self.note_login_failure(client_ip)
            await to_thread.run_sync(self._audit_failed_sign_in, username, client_ip, scheme)
            raise SignInRefused("wrong username or password")
        if snap.disabled:  # told only to whoever knows the password
            await to_thread.run_sync(self._audit_failed_sign_in, username, client_ip, scheme, "disabled")
            raise SignInRefused("this user is disabled")
        return snap.principal(client_ip=client_ip, scheme=scheme)
