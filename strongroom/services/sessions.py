"""Sign-in sessions: opaque access tokens and rotating refresh tokens, stored only as hashes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from strongroom.crypto import tokens
from strongroom.crypto.tokens import Hasher
from strongroom.db import Database, utcnow
from strongroom.errors import Unauthenticated
from strongroom.models import AuthSession, User
from strongroom.principal import Principal
from strongroom.services.audit import AuditService
from strongroom.services.users import UserSnapshot, snapshot
from strongroom.settings import Settings


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


class SessionService:
    def __init__(self, db: Database, settings: Settings, audit: AuditService, hasher: Hasher) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.hasher = hasher
        self.access_prefix = settings.bearer_key_prefix + "a"
        self.refresh_prefix = settings.bearer_key_prefix + "r"
        # access hash -> (checked_at, snapshot or None, expires_at epoch)
        self._cache: dict[str, tuple[float, UserSnapshot | None, float]] = {}

    def issue(self, principal: Principal) -> TokenPair:
        """Start a session for ``principal``'s user and return its tokens (audited as a sign-in)."""
        pair, _ = self._new_session(principal.user_id, str(uuid.uuid4()))
        with self.db.session() as session:
            self.audit.record(session, "auth.sign_in", "ok", principal=principal, target=f"user:{principal.user_id}",
                              details={"scheme": "password", "grant": "password"})
        return pair

    def _new_session(self, user_id: int, family: str, session=None) -> tuple[TokenPair, AuthSession]:
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

    def refresh(self, refresh_token: str, client_ip: str | None) -> TokenPair:
        """Rotate a refresh token: return a new pair and retire the old one.

        A refresh token used twice means it leaked: the whole session family is revoked and
        Unauthenticated is raised. Unknown or expired tokens raise Unauthenticated too.
        """
        if not tokens.well_formed(refresh_token, self.refresh_prefix):
            raise Unauthenticated("invalid refresh token")
        digest = self.hasher.token(refresh_token)
        now = utcnow()
        refused: str | None = None
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.refresh_hash == digest))
            if row is None or row.revoked_at is not None or row.refresh_expires_at <= now:
                refused = "unknown_or_expired"
            elif row.rotated_at is not None:
                refused = "reused_refresh_token"
                session.execute(
                    update(AuthSession).where(AuthSession.family_id == row.family_id).values(revoked_at=now)
                )
            if refused:
                self.audit.record(session, "auth.refresh", "refused", user_id=row.user_id if row else None,
                                  client_ip=client_ip, details={"reason": refused})
            else:
                row.rotated_at = now
                row.access_expires_at = min(row.access_expires_at, now)
                pair, _ = self._new_session(row.user_id, row.family_id, session)
                self.audit.record(session, "auth.refresh", "ok", user_id=row.user_id, client_ip=client_ip)
        if refused:
            self._cache.clear()  # a revoked family may have cached access tokens
            raise Unauthenticated("invalid refresh token")
        self._cache.pop(row.access_hash, None)
        return pair

    def logout(self, principal: Principal, access_token: str | None) -> None:
        """End the session of ``access_token`` (its whole refresh family)."""
        if not access_token:
            return
        digest = self.hasher.token(access_token)
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.access_hash == digest))
            if row is not None and row.user_id == principal.user_id:
                session.execute(
                    update(AuthSession).where(AuthSession.family_id == row.family_id).values(revoked_at=utcnow())
                )
                self.audit.record(session, "auth.logout", "ok", principal=principal)
        self._cache.pop(digest, None)

    def looks_like_access_token(self, token: str) -> bool:
        return token.startswith(self.access_prefix + "_")

    def resolve_cached(self, access_token: str) -> UserSnapshot | None | bool:
        """Return the user of a token from memory: a snapshot, None (refused), or False (not cached)."""
        if not tokens.well_formed(access_token, self.access_prefix):
            return None
        cached = self._cache.get(self.hasher.token(access_token))
        if cached and time.monotonic() - cached[0] < self.settings.key_cache_ttl_seconds:
            return cached[1] if time.time() < cached[2] else None
        return False

    def resolve(self, access_token: str) -> UserSnapshot | None:
        """Return the user of a live access token, or None. Reads the database (blocking)."""
        if not tokens.well_formed(access_token, self.access_prefix):
            return None
        digest = self.hasher.token(access_token)
        now = time.monotonic()
        with self.db.session() as session:
            row = session.scalar(select(AuthSession).where(AuthSession.access_hash == digest))
            snap, expires = None, 0.0
            if row is not None and row.revoked_at is None:
                user = session.get(User, row.user_id)
                snap = snapshot(user) if user else None
                expires = row.access_expires_at.timestamp()
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[digest] = (now, snap, expires)
        return snap if time.time() < expires else None

