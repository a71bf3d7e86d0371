"""One authentication pipeline for every surface: a request in, a Principal out.

Schemes: access token, bearer key (``Authorization: Bearer`` or ``X-API-Key``), HTTP Basic with
a password or with a key id and secret, and signed requests (Kalshi's headers, and the native
``SR-ACCESS-*`` headers for HMAC, RSA-PSS, RSA PKCS#1 v1.5 and Ed25519). Each surface declares
which schemes it accepts. Refusals are audited with their reason; the caller only learns
401, 403 or 429.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from anyio import to_thread

from strongroom.crypto import tokens
from strongroom.errors import DomainError, Forbidden, RateLimited, Unauthenticated
from strongroom.principal import Principal
from strongroom.ratelimit import RateLimiter
from strongroom.services.apikeys import ApiKeyService, KeyRecord
from strongroom.services.audit import AuditService
from strongroom.services.sessions import SessionService
from strongroom.services.users import UserService
from strongroom.settings import Settings

log = logging.getLogger("strongroom.auth")


class Scheme(StrEnum):
    ACCESS_TOKEN = "access_token"
    BEARER_KEY = "bearer_key"
    BASIC_PASSWORD = "basic_password"
    BASIC_KEY = "basic_key"
    KALSHI_SIGNATURE = "kalshi_signature"
    SIGNED_REQUEST = "signed_request"


ALL_SCHEMES = frozenset(Scheme)


@dataclass(frozen=True)
class RequestFacts:
    """What authentication reads from a request. ``headers`` keys are lower-case."""

    method: str
    path: str  # raw path as received, without the query
    query: str
    headers: Mapping[str, str]
    body: bytes
    client_ip: str | None


class Refused(Exception):
    def __init__(self, reason: str, error: DomainError, record: KeyRecord | None = None, key_id: str | None = None):
        self.reason, self.error, self.record, self.key_id = reason, error, record, key_id


def _generic_401() -> Unauthenticated:
    return Unauthenticated("invalid credentials")


class UsageRecorder:
    """Remembers when keys were used and writes ``last_used_at`` in batches, never per request."""

    def __init__(self, keys: ApiKeyService, interval: float) -> None:
        self.keys = keys
        self.interval = interval
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def touch(self, key_id: str) -> None:
        self._pending[key_id] = time.time()

    def flush(self) -> int:
        """Write pending timestamps; return how many keys were written."""
        batch, self._pending = self._pending, {}
        if batch:
            try:
                self.keys.record_last_used(batch)
            except Exception as exc:  # type only: a database error's text carries parameters
                log.error("could not write last_used_at: %s", type(exc).__name__)
        return len(batch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await to_thread.run_sync(self.flush)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await to_thread.run_sync(self.flush)


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        users: UserService,
        sessions: SessionService,
        keys: ApiKeyService,
        audit: AuditService,
        limiter: RateLimiter,
        usage: UsageRecorder,
    ) -> None:
        self.settings = settings
        self.users = users
        self.sessions = sessions
        self.keys = keys
        self.audit = audit
        self.limiter = limiter
        self.usage = usage
        self.ttl = settings.key_cache_ttl_seconds
        self.window_ms = settings.signature_window_seconds * 1000
        self._by_id: dict[str, tuple[float, KeyRecord | None]] = {}
        self._by_hash: dict[str, tuple[float, str | None]] = {}
        keys.listeners.append(self.forget)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (other processes refresh within the TTL)."""
        self._by_id.pop(key_id, None)
        self._by_hash.clear()

    # --- entry point -----------------------------------------------------------------------------

    async def authenticate(self, facts: RequestFacts, schemes: Iterable[Scheme] = ALL_SCHEMES) -> Principal:
        """Return the principal of ``facts``.

        Raises Unauthenticated (401: no, unknown, expired, disabled or badly signed credentials),
        Forbidden (403: client IP outside the key's allowlist) or RateLimited (429).
        """
        await self.limiter.hit(self.settings.rate_limit_per_ip, "ip", facts.client_ip or "-")
        accepted = frozenset(schemes)
        headers = facts.headers
        try:
            if Scheme.KALSHI_SIGNATURE in accepted and "kalshi-access-key" in headers:
                return await self._signed(facts, kalshi=True)
            if Scheme.SIGNED_REQUEST in accepted and "sr-access-key" in headers:
                return await self._signed(facts, kalshi=False)
            authorization = headers.get("authorization", "")
            scheme, _, value = authorization.partition(" ")
            scheme = scheme.lower()
            value = value.strip()
            if scheme == "bearer" and value:
                if Scheme.ACCESS_TOKEN in accepted and self.sessions.looks_like_access_token(value):
                    return await self._access_token(facts, value)
                if Scheme.BEARER_KEY in accepted:
                    return await self._bearer(facts, value, "bearer_key")
            if Scheme.BEARER_KEY in accepted and headers.get("x-api-key"):
                return await self._bearer(facts, headers["x-api-key"].strip(), "x_api_key")
            if scheme == "basic" and value:
                return await self._basic(facts, value, accepted)
        except Refused as refused:
            await self._audit_refusal(facts, refused)
            raise refused.error from None
        raise Unauthenticated("authentication required")

    async def _audit_refusal(self, facts: RequestFacts, refused: Refused) -> None:
        record = refused.record
        await to_thread.run_sync(
            lambda: self.audit.record_now(
                "auth.key",
                "refused",
                user_id=record.user.id if record else None,
                key_id=record.key_id if record else refused.key_id,
                client_ip=facts.client_ip,
                details={"reason": refused.reason, "method": facts.method, "path": facts.path[:200]},
            )
        )

    # --- key records ---------------------------------------------------------------------------

    async def record(self, key_id: str, *, fresh: bool = False) -> KeyRecord | None:
        """Return the cached record of ``key_id`` (refreshed from the database after the TTL, or now if ``fresh``)."""
        now = time.monotonic()
        cached = self._by_id.get(key_id)
        if not fresh and cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        record = await to_thread.run_sync(self.keys.load_record, key_id)
        if len(self._by_id) > 200_000:
            self._by_id.clear()
        self._by_id[key_id] = (now, record)
        return record

    async def _key_id_for_hash(self, digest: str) -> str | None:
        now = time.monotonic()
        cached = self._by_hash.get(digest)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        key_id = await to_thread.run_sync(self.keys.find_key_id_by_secret_hash, digest)
        if len(self._by_hash) > 200_000:
            self._by_hash.clear()
        self._by_hash[digest] = (now, key_id)
        return key_id

    async def _admit(self, facts: RequestFacts, record: KeyRecord | None, scheme: str, key_id: str | None = None) -> Principal:
        """Apply the checks every key passes: exists, enabled, not expired, IP allowed, rate limit."""
        if record is None:
            raise Refused("unknown_key", _generic_401(), key_id=key_id)
        if not record.enabled:
            raise Refused("disabled", _generic_401(), record)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise Refused("expired", _generic_401(), record)
        if record.networks:
            try:
                ip = ipaddress.ip_address(facts.client_ip or "")
            except ValueError:
                ip = None
            if ip is None or not any(ip in net for net in record.networks):
                raise Refused("ip_not_allowed", Forbidden("access denied"), record)
        try:
            await self.limiter.hit(self.settings.rate_limit_per_key, "key", record.key_id)
        except RateLimited as exc:
            raise Refused("rate_limited", exc, record) from None
        self.usage.touch(record.key_id)
        return record.principal(facts.client_ip, scheme)

    # --- schemes ---------------------------------------------------------------------------------

    async def _access_token(self, facts: RequestFacts, token: str) -> Principal:
        snap = self.sessions.resolve_cached(token)
        if snap is False:
            snap = await to_thread.run_sync(self.sessions.resolve, token)
        if snap is None:
            raise Refused("invalid_access_token", _generic_401())
        return snap.principal(client_ip=facts.client_ip, scheme="access_token")

    async def _bearer(self, facts: RequestFacts, token: str, scheme: str) -> Principal:
        if not tokens.well_formed(token, self.keys.prefix):
            raise Refused("malformed_key", _generic_401())
        digest = self.keys.hasher.token(token)
        key_id = await self._key_id_for_hash(digest)
        record = await self.record(key_id) if key_id else None
        if record is not None and not self._hash_matches(record, digest):
            # the index knows this secret but the cached record does not: it predates a roll made
            # by another process. Reload once, so a new secret works at once everywhere.
            record = await self.record(key_id, fresh=True)
        if record is not None and not self._hash_matches(record, digest):
            record = None  # grace period ended since the hash was indexed
        return await self._admit(facts, record, scheme)

    @staticmethod
    def _hash_matches(record: KeyRecord, digest: str) -> bool:
        now = time.time()
        return any(hmac.compare_digest(h, digest) and (until is None or now < until)
                   for h, until in record.secret_hashes)

    @staticmethod
    def _hmac_secret_matches(record: KeyRecord, secret: str) -> bool:
        now = time.time()
        return any(hmac.compare_digest(s.encode(), secret.encode()) and (until is None or now < until)
                   for s, until in record.hmac_secrets)

    async def _basic(self, facts: RequestFacts, value: str, accepted: frozenset[Scheme]) -> Principal:
        try:
            user, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Refused("malformed_basic", _generic_401()) from None
        if not sep:
            raise Refused("malformed_basic", _generic_401())
        if Scheme.BASIC_KEY in accepted and _looks_like_key_id(user):
            record = await self.record(user)
            if record is not None:
                if record.kind == "bearer":
                    ok = self._hash_matches(record, self.keys.hasher.token(secret))
                elif record.kind == "hmac":
                    ok = self._hmac_secret_matches(record, secret)
                else:
                    ok = False
                if not ok:
                    raise Refused("bad_secret", _generic_401(), record)
            return await self._admit(facts, record, "basic_key", key_id=user)
        if Scheme.BASIC_PASSWORD in accepted:
            try:
                return await self.users.sign_in(user, secret, facts.client_ip, scheme="basic")
            except Unauthenticated:
                raise Unauthenticated("invalid credentials") from None
        raise Refused("scheme_not_accepted", _generic_401())

    async def _signed(self, facts: RequestFacts, *, kalshi: bool) -> Principal:
        prefix = "kalshi-access-" if kalshi else "sr-access-"
        key_id = facts.headers.get(prefix + "key", "").strip()
        stamp = facts.headers.get(prefix + "timestamp", "").strip()
        signature = facts.headers.get(prefix + "signature", "").strip()
        if not key_id or not stamp or not signature or not _looks_like_key_id(key_id):
            raise Refused("malformed_signature_headers", _generic_401(), key_id=key_id[:64] or None)
        record = await self.record(key_id)
        if record is None:
            raise Refused("unknown_key", _generic_401(), key_id=key_id)
        # isascii + a length cap: "²".isdigit() is True and int() of >4300 digits raises (a 500, not a 401).
        if (not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 17
                or abs(int(stamp) - time.time() * 1000) > self.window_ms):
            raise Refused("stale_timestamp", _generic_401(), record)
        if kalshi:
            message = (stamp + facts.method.upper() + facts.path).encode()
        else:
            target = facts.path + ("?" + facts.query if facts.query else "")
            message = (stamp + facts.method.upper() + target).encode() + facts.body
        ok = self._signature_ok(record, signature, message, allow_pkcs1=not kalshi, allow_hmac=not kalshi)
        if not ok and record.kind == "hmac" and not kalshi:
            # maybe signed with a secret rolled on another process since we cached the key: reload
            # once. (A refusal already costs an audit write, so this adds no new lever for abuse.)
            fresh = await self.record(key_id, fresh=True)
            if fresh is not None:
                record = fresh
                ok = self._signature_ok(record, signature, message, allow_pkcs1=False, allow_hmac=True)
        if not ok:
            raise Refused("bad_signature", _generic_401(), record)
        # keyed on the signature's bytes, not its spelling: hex case and base64's unused bits would
        # otherwise let one signature be replayed as a "new" one
        canonical = signature.lower() if record.kind == "hmac" else base64.b64decode(signature, validate=True).hex()
        replay_key = hashlib.sha256(f"{record.key_id}|{stamp}|{canonical}".encode()).hexdigest()
        if not await self.limiter.seen_once(replay_key, 2 * self.settings.signature_window_seconds + 1):
            raise Refused("replayed_signature", _generic_401(), record)
        return await self._admit(facts, record, "kalshi_signature" if kalshi else "signed_request")

    def _signature_ok(self, record: KeyRecord, signature: str, message: bytes, *, allow_pkcs1: bool,
                      allow_hmac: bool) -> bool:
        if record.kind == "hmac":
            if not allow_hmac:
                return False
            now = time.time()
            expected = [hmac.new(s.encode(), message, hashlib.sha256).hexdigest()
                        for s, until in record.hmac_secrets if until is None or now < until]
            return any(hmac.compare_digest(e, signature.lower()) for e in expected)
        if record.verifier is None:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return record.verifier.verify(raw, message, allow_pkcs1=allow_pkcs1)


def _looks_like_key_id(value: str) -> bool:
    return len(value) == 36 and value.count("-") == 4


def client_ip(peer: str | None, forwarded_for: str | None, trusted: list[ipaddress._BaseNetwork]) -> str | None:
    """Return the client's IP: the peer, unless the peer is a trusted proxy, in which case the
    right-most X-Forwarded-For address that is not itself a trusted proxy."""
    if not peer or not trusted or not forwarded_for:
        return peer

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return hops[0] if hops else peer
