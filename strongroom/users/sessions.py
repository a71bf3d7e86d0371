"""Sign-in sessions: opaque access tokens and rotating refresh tokens, stored only as hashes.

A refresh token is redeemed by a conditional UPDATE (``WHERE rotated_at IS NULL AND revoked_at IS
NULL``): of concurrent redemptions exactly one wins, and the others count as reuse, which revokes the
token's whole family. Resolved access tokens are cached in memory for ``key_cache_ttl_seconds``
(bounded by size, least recently used first out); a revoked family drops its own tokens from the
cache, and nothing else ever empties it.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cachetools import TTLCache
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from strongroom.audit.services import AuditService
from strongroom.crypto import tokens
from strongroom.crypto.tokens import Hasher
from strongroom.db import Database, retry_read_once, rowcount, utcnow
from strongroom.errors import Unauthenticated
from strongroom.models import AuthSession, User
from strongroom.principal import Principal
from strongroom.settings import Settings
from strongroom.users.services import UserSnapshot, hold_user, snapshot

# At most this many resolved access tokens are remembered per process (about 200 bytes each).
ACCESS_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


GRACE = "within_reuse_grace"  # _redeem_or_refuse: redeemed by another request a moment ago (see refresh)


class SessionService:
    def __init__(self, db: Database, settings: Settings, audit: AuditService, hasher: Hasher) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.hasher = hasher
        self.access_prefix = settings.bearer_key_prefix + "a"
        self.refresh_prefix = settings.bearer_key_prefix + "r"
        # access hash -> (snapshot, or None if refused; access expiry, epoch seconds). Used from worker
        # threads and the event loop: every access holds the lock (TTLCache is not thread-safe).
        self._cache: TTLCache[str, tuple[UserSnapshot | None, float]] = TTLCache(
            maxsize=ACCESS_CACHE_SIZE, ttl=settings.key_cache_ttl_seconds)
        self._cache_lock = threading.Lock()
        self._forgets = 0  # how many times tokens were dropped: a resolve that saw one meanwhile caches nothing

    def issue(self, principal: Principal) -> TokenPair:
        """Start a session for ``principal``'s user and return its tokens (audited as a sign-in).

        For a principal of a password sign-in (``password_hash`` set), only while that is still the user's
        password: the user's row is held first (PostgreSQL FOR SHARE, which a password change waits for; SQLite
        the write lock), so a password set meanwhile either comes first (refused here) or ends this session
        with the others. Raises Unauthenticated (the password changed since it was checked, or the user is gone).
        """
        with self.db.session() as session:
            if principal.password_hash is not None:
                hold_user(session, principal.user_id, share=True)
                current = session.scalar(select(User.password_hash).where(User.id == principal.user_id))
                if current != principal.password_hash:
                    raise Unauthenticated("the password changed since it was checked; sign in again")
            pair, _ = self._new_session(principal.user_id, str(uuid.uuid4()), session)
            self.audit.record(session, "auth.sign_in", "ok", principal=principal, target=f"user:{principal.user_id}",
                              details={"scheme": "password", "grant": "password"})
        return pair

    def _new_session(self, user_id: int, family: str, session: Session | None = None) -> tuple[TokenPair, AuthSession]:
        access = tokens.new_token(self.access_prefix)
        refresh = tokens.new_token(self.refresh_prefix)
        now = utcnow()
        row = AuthSession(
            user_id=user_id,
            family_id=family,
            access_hash=self.hasher.token(access),
            refresh_hash=self.hasher.token(refresh),
            access_expires_at=now + timedelta(seconds=self.settings.access_token_ttl_seconds),
            refresh_expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        if session is None:
            with self.db.session() as s:
                s.add(row)
        else:
            session.add(row)
        return TokenPair(access, refresh, self.settings.access_token_ttl_seconds), row

    def refresh(self, refresh_token: str, client_ip: str | None, *, reuse_grace_seconds: float = 0.0) -> TokenPair:
        """Rotate a refresh token: return a new pair and retire the old one.

        Of concurrent refreshes with one token exactly one succeeds. A refresh token used twice
        means it leaked: the whole session family is revoked and Unauthenticated is raised.
        ``reuse_grace_seconds`` (a browser's pages, which renew at once and share one cookie: the console):
        a token redeemed at most that long ago by another request gets a pair of its own in the same family
        instead, so the pages' renewals do not end the session, in any process; after the grace it is a
        reuse as above. The API's own refresh gives no grace.
        Unknown or expired tokens raise Unauthenticated too (and revoke nothing); so do the tokens of a
        disabled user (unredeemed: they work again once the user is enabled).
        """
        if not tokens.well_formed(refresh_token, self.refresh_prefix):
            self.audit.refusal("auth.refresh", "malformed_token", client_ip=client_ip)
            raise Unauthenticated("invalid refresh token")
        digest = self.hasher.token(refresh_token)
        now = utcnow()
        revoked: list[str] = []
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.refresh_hash == digest))
            refused = ("unknown_or_expired" if row is None
                       else "disabled" if session.scalar(select(User.disabled).where(User.id == row.user_id))
                       else self._redeem_or_refuse(session, row, now, reuse_grace_seconds))  # a disabled user's stays
            if row is not None and refused in (None, GRACE):
                pair, _ = self._new_session(row.user_id, row.family_id, session)
                self.audit.record(session, "auth.refresh", "ok", user_id=row.user_id, client_ip=client_ip,
                                  details={"within_reuse_grace": True} if refused == GRACE else None)
                refused = None
            else:
                if row is not None and refused == "reused_refresh_token":
                    revoked = self._revoke_family(session, row.family_id, now)
                    # a leaked token is an event of its own for its user: one row each, with the revocation
                    self.audit.record(session, "auth.refresh", "refused", user_id=row.user_id,
                                      client_ip=client_ip, details={"reason": refused})
        if refused in ("unknown_or_expired", "disabled"):  # a flood of guesses costs one row a minute per client
            self.audit.refusal("auth.refresh", refused, client_ip=client_ip, user_id=row.user_id if row else None)
        if row is None or refused is not None:
            self._forget(revoked)  # only a revoked family's cached access tokens, never the whole cache
            raise Unauthenticated("invalid refresh token")
        self._forget([row.access_hash])
        return pair

    def _redeem_or_refuse(self, session: Session, row: AuthSession, now: datetime, grace: float = 0.0) -> str | None:
        """Redeem ``row``'s refresh token; return None if this call did, :data:`GRACE` if another request did at
        most ``grace`` seconds ago (its session still live), else why it is refused.

        ``reused_refresh_token`` when it was redeemed before (or just now by a concurrent request),
        ``unknown_or_expired`` when it expired or its session was signed out.
        """
        if row.refresh_expires_at <= now:
            return "unknown_or_expired"
        if row.rotated_at is None and row.revoked_at is None and self._redeem(session, row, now):
            return None
        rotated, revoked = session.execute(select(AuthSession.rotated_at, AuthSession.revoked_at)
                                           .where(AuthSession.id == row.id)).one()
        if rotated is not None and revoked is None and grace > 0 and (now - rotated).total_seconds() <= grace:
            return GRACE
        return "reused_refresh_token" if rotated is not None else "unknown_or_expired"

    @staticmethod
    def _redeem(session: Session, row: AuthSession, now: datetime) -> bool:
        """Mark ``row``'s refresh token used (and end its access token) if nobody did; return True if this call did."""
        redeemed = rowcount(session.execute(
            update(AuthSession)
            .where(AuthSession.id == row.id, AuthSession.rotated_at.is_(None), AuthSession.revoked_at.is_(None),
                   AuthSession.refresh_expires_at > now)
            .values(rotated_at=now, access_expires_at=min(row.access_expires_at, now))
            .execution_options(synchronize_session=False)
        ))
        return redeemed == 1

    @staticmethod
    def _revoke_family(session: Session, family_id: str, now: datetime) -> list[str]:
        """Revoke every session of ``family_id``; return the access-token hashes of the family.

        On PostgreSQL the family's rows are locked first, in id order: concurrent revocations of one
        family (the losers of a refresh race) would otherwise lock its rows in scan order and deadlock.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(AuthSession.id).where(AuthSession.family_id == family_id)
                            .order_by(AuthSession.id).with_for_update())
        session.execute(
            update(AuthSession).where(AuthSession.family_id == family_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now).execution_options(synchronize_session=False)
        )
        return list(session.scalars(select(AuthSession.access_hash).where(AuthSession.family_id == family_id)))

    def _forget(self, access_hashes: list[str]) -> None:
        """Drop these access tokens from this process's cache."""
        with self._cache_lock:
            self._forgets += 1
            for digest in access_hashes:
                self._cache.pop(digest, None)

    def logout(self, principal: Principal, access_token: str | None) -> None:
        """End the session of ``access_token`` (its whole refresh family)."""
        if not access_token:
            return
        digest = self.hasher.token(access_token)
        revoked = [digest]
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.access_hash == digest))
            if row is not None and row.user_id == principal.user_id:
                revoked += self._revoke_family(session, row.family_id, utcnow())
                self.audit.record(session, "auth.logout", "ok", principal=principal)
        self._forget(revoked)

    def looks_like_access_token(self, token: str) -> bool:
        return token.startswith(self.access_prefix + "_")

    def resolve_cached(self, access_token: str) -> UserSnapshot | Literal[False] | None:
        """Return the user of a token from memory: a snapshot, None (refused), or False (not cached)."""
        if not tokens.well_formed(access_token, self.access_prefix):
            return None
        digest = self.hasher.token(access_token)
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached is None:
            return False
        snap, expires = cached
        return snap if time.time() < expires else None

    @retry_read_once
    def resolve(self, access_token: str) -> UserSnapshot | None:
        """Return the user of a live access token, or None. Reads the database (blocking)."""
        if not tokens.well_formed(access_token, self.access_prefix):
            return None
        digest = self.hasher.token(access_token)
        with self._cache_lock:
            forgets = self._forgets
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.access_hash == digest))
            snap, expires = None, 0.0
            if row is not None and row.revoked_at is None:
                user = session.get(User, row.user_id)
                snap = snapshot(user) if user else None
                expires = row.access_expires_at.timestamp()
        with self._cache_lock:
            # not if tokens were dropped since the read began: a logout or a reuse that revoked this token after
            # the read would otherwise be undone here until the entry ages out
            if self._forgets == forgets:
                self._cache[digest] = (snap, expires)
        return snap if time.time() < expires else None
