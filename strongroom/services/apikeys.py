"""Platform API keys: bearer, HMAC-signing and RSA/Ed25519 public keys, with scopes, account
binding, IP allowlists, expiry, rolling and deletion."""

from __future__ import annotations

import ipaddress
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from strongroom.crypto import tokens
from strongroom.crypto.envelope import Envelope, Sealed
from strongroom.crypto.signatures import KeyFormatError, Verifier, generate_keypair, load_public_key, verifier_from_pem
from strongroom.crypto.tokens import Hasher
from strongroom.db import Database, utcnow
from strongroom.errors import (
    BadRequest,
    Forbidden,
    InsufficientScope,
    InsufficientUsageLevel,
    LimitExceeded,
    NotFound,
    ValidationFailed,
)
from strongroom.models import ApiKey, User
from strongroom.pagination import Page, paginate
from strongroom.principal import Principal
from strongroom.services.audit import AuditService
from strongroom.services.users import UserSnapshot, snapshot
from strongroom.settings import Settings

KINDS = ("bearer", "hmac", "rsa", "ed25519")
SCOPE_RE = re.compile(r"^(read|write|delete)(::[a-z0-9_]{1,64})?$")
DEFAULT_SCOPES = ("read", "write")
PUBLIC_KEY_UPLOAD_LEVELS = ("premier", "market_maker")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    def principal(self, client_ip: str | None, scheme: str) -> Principal:
        return Principal(
            user_id=self.user.id,
            username=self.user.username,
            is_admin=self.user.is_admin,
            usage_level=self.user.usage_level,
            key_id=self.key_id,
            scopes=self.scopes,
            account_ids=self.account_ids,
            client_ip=client_ip,
            scheme=scheme,
        )


def key_aad(key: ApiKey) -> bytes:
    return f"api-key|{key.key_id}|{key.user_id}".encode()


def _epoch(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt else None


class ApiKeyService:
    def __init__(self, db: Database, settings: Settings, audit: AuditService, envelope: Envelope, hasher: Hasher,
                 accounts) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.envelope = envelope
        self.hasher = hasher
        self.accounts = accounts
        self.prefix = settings.bearer_key_prefix
        self.hmac_prefix = settings.bearer_key_prefix + "s"
        self.listeners: list = []  # callables(key_id) told when a key changes in this process

    # --- validation of attributes -------------------------------------------------------------

    def _scopes(self, principal: Principal, scopes: list[str] | None) -> list[str]:
        if scopes is None:
            scopes = list(DEFAULT_SCOPES)
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValidationFailed("scopes must be a list of strings", fields={"scopes": "list of strings"})
        clean = list(dict.fromkeys(scopes))
        bad = [s for s in clean if not SCOPE_RE.match(s)]
        if bad:
            raise ValidationFailed(f"unknown scope: {bad[0]}", fields={"scopes": f"unknown scope {bad[0]!r}"})
        if not clean:
            raise ValidationFailed("at least one scope is required", fields={"scopes": "empty"})
        if "write" in clean and "read" not in clean:
            raise ValidationFailed("the write scope requires the read scope", fields={"scopes": "write requires read"})
        for scope in clean:
            parent = scope.split("::", 1)[0]
            if scope not in principal.scopes and parent not in principal.scopes:
                raise InsufficientScope(f"a key cannot grant the '{scope}' scope its creator lacks")
        return clean

    def _account_ids(self, principal: Principal, account_ids: list[int] | None) -> list[int] | None:
        if account_ids is None:
            return sorted(principal.account_ids) if principal.account_ids is not None else None
        if not isinstance(account_ids, list) or not all(isinstance(a, int) and not isinstance(a, bool)
                                                          for a in account_ids):
            raise ValidationFailed("account_ids must be a list of integers", fields={"account_ids": "list of integers"})
        wanted = sorted(set(account_ids))
        if principal.account_ids is not None and not set(wanted) <= principal.account_ids:
            raise InsufficientScope("a key cannot be bound to accounts its creator cannot see")
        missing = set(wanted) - self.accounts.owned_ids(principal.user_id, wanted)
        if missing:
            raise ValidationFailed("unknown exchange accounts",
                                   fields={"account_ids": f"not your live accounts: {sorted(missing)}"})
        return wanted

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
        _generated: bool = False,
    ) -> tuple[ApiKey, str | None]:
        """Create a key; return it and its secret (bearer, hmac) which is never shown again.

        Raises ValidationFailed (bad attributes or public key), InsufficientScope (more than the
        creator holds), InsufficientUsageLevel (uploading a public key below premier),
        LimitExceeded (too many keys).
        """
        principal.require("write")
        if kind not in KINDS:
            raise ValidationFailed("kind must be bearer, hmac, rsa or ed25519", fields={"kind": "unknown kind"})
        key = ApiKey(
            key_id=str(uuid.uuid4()),
            user_id=principal.user_id,
            name=self._name(name),
            kind=kind,
            scopes=self._scopes(principal, scopes),
            account_ids=self._account_ids(principal, account_ids),
            ip_allowlist=self._allowlist(ip_allowlist),
            expires_at=self._expiry(expires_at),
            enabled=True,
        )
        secret: str | None = None
        if kind in ("rsa", "ed25519"):
            if not public_key:
                raise ValidationFailed("public_key is required for this kind", fields={"public_key": "required"})
            if not _generated and not (principal.is_admin or principal.usage_level in PUBLIC_KEY_UPLOAD_LEVELS):
                raise InsufficientUsageLevel("creating a key with your own public key needs the premier usage level")
            try:
                _, _, spki = load_public_key(public_key, expected=kind)
            except KeyFormatError as exc:
                raise ValidationFailed(str(exc), fields={"public_key": str(exc)}) from None
            key.public_key = spki
            key.hint = f"{kind}:{self.hasher.fingerprint('pubkey', spki)[:8]}"
        elif public_key:
            raise ValidationFailed("public_key is only for rsa and ed25519 keys", fields={"public_key": "not allowed"})
        elif kind == "bearer":
            secret = tokens.new_token(self.prefix)
            key.secret_hash = self.hasher.token(secret)
            key.hint = tokens.hint(secret)
        else:
            secret = tokens.new_token(self.hmac_prefix)
            key.hint = tokens.hint(secret)
            self._seal_hmac(key, {"current": secret})
        with self.db.session() as session:
            count = session.scalar(select(func.count(ApiKey.id)).where(ApiKey.user_id == principal.user_id))
            if count >= self.settings.max_api_keys_per_user:
                raise LimitExceeded(f"at most {self.settings.max_api_keys_per_user} API keys per user")
            session.add(key)
            session.flush()
            self.audit.record(session, "api_key.create", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"kind": kind, "scopes": key.scopes, "generated": _generated})
        return key, secret

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
        if key_type not in ("rsa", "ed25519"):
            raise ValidationFailed("key_type must be rsa or ed25519", fields={"key_type": "rsa or ed25519"})
        principal.require("write")
        private_pem, public_pem = generate_keypair(key_type)
        key, _ = self.create(principal, name=name, kind=key_type, public_key=public_pem, _generated=True, **attrs)
        return key, private_pem

    def _seal_hmac(self, key: ApiKey, doc: dict) -> None:
        sealed = self.envelope.seal(json.dumps(doc).encode(), key_aad(key))
        key.secret_ciphertext, key.secret_nonce = sealed.ciphertext, sealed.nonce
        key.secret_wrapped_dek, key.kek_version = sealed.wrapped_dek, sealed.kek_version

    def _open_hmac(self, key: ApiKey) -> dict:
        sealed = Sealed(key.secret_ciphertext, key.secret_nonce, key.secret_wrapped_dek, key.kek_version)
        return json.loads(self.envelope.open(sealed, key_aad(key)))

    def _owned(self, session, principal: Principal, key_id: str) -> ApiKey:
        key = session.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id)))
        if key is None or key.user_id != principal.user_id:
            raise NotFound("API key not found")
        return key

    def get(self, principal: Principal, key_id: str) -> ApiKey:
        """Return one of the caller's keys; NotFound for unknown ids and for other users' keys."""
        principal.require("read")
        with self.db.session() as session:
            return self._owned(session, principal, key_id)

    def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[ApiKey]:
        """Return a page of the caller's keys, oldest first."""
        principal.require("read")
        with self.db.session() as session:
            return paginate(session, select(ApiKey).where(ApiKey.user_id == principal.user_id), ApiKey.id, cursor, limit)

    def list_all(self, principal: Principal) -> list[ApiKey]:
        """Return all the caller's keys (bounded by the per-user cap)."""
        principal.require("read")
        with self.db.session() as session:
            return list(session.scalars(select(ApiKey).where(ApiKey.user_id == principal.user_id).order_by(ApiKey.id)))

    def list_any(self, principal: Principal, *, user_id: int | None = None, cursor: str | None = None,
                 limit: int = 50) -> Page[ApiKey]:
        """Admins (the operator's command line): a page of every user's keys, or ``user_id``'s, oldest first.

        Raises Forbidden (not an admin), ValidationFailed (cursor, limit).
        """
        principal.require("read")
        if not principal.is_admin:
            raise Forbidden("only admins see other users' keys")
        query = select(ApiKey)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        with self.db.session() as session:
            return paginate(session, query, ApiKey.id, cursor, limit)

    def get_any(self, principal: Principal, key_id: str) -> ApiKey:
        """Admins: any user's key. Raises Forbidden (not an admin), NotFound."""
        principal.require("read")
        if not principal.is_admin:
            raise Forbidden("only admins see other users' keys")
        with self.db.session() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id)))
            if key is None:
                raise NotFound("API key not found")
            return key

    def update(self, principal: Principal, key_id: str, changes: dict[str, Any]) -> ApiKey:
        """Change name, scopes, account_ids, ip_allowlist, enabled or expires_at. Takes effect everywhere within 1 s."""
        principal.require("write")
        with self.db.session() as session:
            key = self._owned(session, principal, key_id)
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
            key.updated_at = utcnow()
            self.audit.record(session, "api_key.update", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"fields": sorted(changes)})
        self._changed(key.key_id)
        return key

    def roll(self, principal: Principal, key_id: str, grace_seconds: int = 0) -> tuple[ApiKey, str]:
        """Issue a new secret; the old one stays valid for ``grace_seconds`` (0: revoked now).

        Returns the key and the new secret (shown once). Raises NotFound, BadRequest (public-key
        keys are replaced by creating a new key), ValidationFailed.
        """
        principal.require("write")
        if not isinstance(grace_seconds, int) or not 0 <= grace_seconds <= 30 * 24 * 3600:
            raise ValidationFailed("grace_seconds must be 0..2592000", fields={"grace_seconds": "0..2592000"})
        now = utcnow()
        # from the exact time, not utcnow()'s whole second: that would cut up to 1 s off the grace
        until = datetime.now(UTC) + timedelta(seconds=grace_seconds) if grace_seconds else None
        with self.db.session() as session:
            key = self._owned(session, principal, key_id)
            if key.kind == "bearer":
                secret = tokens.new_token(self.prefix)
                key.previous_secret_hash = key.secret_hash if until else None
                key.previous_expires_at = until
                key.secret_hash = self.hasher.token(secret)
            elif key.kind == "hmac":
                secret = tokens.new_token(self.hmac_prefix)
                doc = {"current": secret}
                if until:
                    doc["previous"] = self._open_hmac(key)["current"]
                key.previous_expires_at = until
                self._seal_hmac(key, doc)
            else:
                raise BadRequest("public-key keys cannot be rolled; create or generate a new key and delete this one")
            key.hint = tokens.hint(secret)
            key.updated_at = now
            self.audit.record(session, "api_key.roll", "ok", principal=principal, target=f"api_key:{key.key_id}",
                              details={"grace_seconds": grace_seconds})
        self._changed(key.key_id)
        return key, secret

    def delete(self, principal: Principal, key_id: str) -> None:
        """Delete a key at once. Raises NotFound (unknown or another user's)."""
        principal.require("delete")
        with self.db.session() as session:
            key = self._owned(session, principal, key_id)
            session.delete(key)
            self.audit.record(session, "api_key.delete", "ok", principal=principal, target=f"api_key:{key_id}",
                              details={"kind": key.kind})
        self._changed(str(key_id))

    def _changed(self, key_id: str) -> None:
        for listener in self.listeners:
            listener(key_id)

    # --- verification support ------------------------------------------------------------------

    def find_key_id_by_secret_hash(self, digest: str) -> str | None:
        """Return the key id whose current (or in-grace previous) bearer hash is ``digest``."""
        with self.db.session() as session:
            return session.scalar(
                select(ApiKey.key_id).where(
                    or_(ApiKey.secret_hash == digest,
                        (ApiKey.previous_secret_hash == digest) & (ApiKey.previous_expires_at > utcnow()))
                ).limit(1)
            )

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
            hashes: tuple = ()
            secrets: tuple = ()
            if key.kind == "bearer":
                hashes = ((key.secret_hash, None),)
                if key.previous_secret_hash and prev_until:
                    hashes += ((key.previous_secret_hash, prev_until),)
            elif key.kind == "hmac":
                doc = self._open_hmac(key)
                secrets = ((doc["current"], None),)
                if doc.get("previous") and prev_until:
                    secrets += ((doc["previous"], prev_until),)
            return KeyRecord(
                key_id=key.key_id,
                kind=key.kind,
                user=snapshot(user),
                scopes=frozenset(key.scopes),
                account_ids=frozenset(key.account_ids) if key.account_ids is not None else None,
                networks=tuple(ipaddress.ip_network(c) for c in key.ip_allowlist),
                expires_at=_epoch(key.expires_at),
                enabled=key.enabled,
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
