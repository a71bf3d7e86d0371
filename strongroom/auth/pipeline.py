"""One authentication pipeline for every surface: a request in, a Principal out.

A surface declares the schemes it accepts (strongroom.auth.schemes), in order. The pipeline
counts the request against the per-IP limit, lets the first scheme that claims the request
authenticate it, and audits a refusal with its reason; the caller only learns 401, 403 or 429.
Schemes share the key-record cache and the checks every key passes (:meth:`Authenticator.admit`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from anyio import to_thread
from cachetools import TTLCache

from strongroom.auth.facts import RequestFacts
from strongroom.auth.schemes.base import AuthScheme, Refused, invalid_credentials
from strongroom.enums import AuthMethod, RefusalReason
from strongroom.errors import IpNotAllowed, RateLimited, Unauthenticated
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.audit.services import AuditService
    from strongroom.audit.usage import UsageRecorder
    from strongroom.keys.services import ApiKeyService, KeyRecord
    from strongroom.metrics import Metrics
    from strongroom.ratelimit import RateLimiter
    from strongroom.settings import Settings
    from strongroom.users.services import UserService
    from strongroom.users.sessions import SessionService, TokenPair

log = logging.getLogger("strongroom.auth")


class Authenticator:
    """Authenticates requests with the schemes a surface accepts; owns the key-record cache."""

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
        self.window_ms = settings.signature_window_seconds * 1000
        self.per_ip, self.per_key = settings.rate_limit_per_ip, settings.rate_limit_per_key
        self.fail_per_ip, self.fail_per_key = settings.auth_failures_per_ip, settings.auth_failures_per_key
        self.metrics: Metrics | None = None  # set by the core: outcomes by scheme
        # Bounded by size (least recently used out first) and by age (revocation reaches every process
        # within the TTL). A key change in this process drops its record at once (forget).
        ttl, size = settings.key_cache_ttl_seconds, settings.key_cache_size
        self.records: TTLCache[str, KeyRecord | None] = TTLCache(maxsize=size, ttl=ttl)
        self.hash_index: TTLCache[str, str | None] = TTLCache(maxsize=size, ttl=ttl)
        keys.listeners.append(self.forget)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (other processes refresh within the TTL).

        Hash-index entries pointing at the key may stay: every use re-checks the key's record.
        """
        self.records.pop(key_id, None)

    # --- entry point -----------------------------------------------------------------------------

    async def authenticate(self, facts: RequestFacts, schemes: Iterable[AuthScheme]) -> Principal:
        """Return the principal of ``facts`` by the first of ``schemes`` that claims it.

        Raises Unauthenticated (401: no, unknown, expired, disabled or badly signed credentials),
        Forbidden (403: client IP outside the key's allowlist), RateLimited (429) or
        ServiceUnavailable (503: the shared rate-limit store does not answer).
        """
        ip = facts.client_ip or "-"
        limiter = self.limiter
        if limiter.local:  # the common case: no coroutines for in-process counting
            ip_window = limiter.hit_local(self.per_ip, "ip", ip)
            limiter.check_local(self.fail_per_ip, "auth-fail", ip)
        else:
            ip_window = await limiter.hit(self.per_ip, "ip", ip)
            await limiter.check(self.fail_per_ip, "auth-fail", ip)
        for scheme in schemes:
            if not scheme.claims(facts):
                continue
            try:
                if scheme.reads_body:
                    await facts.read_body()
                principal = await scheme.authenticate(facts, self)
            except Refused as refused:
                if self.metrics is not None:
                    self.metrics.auth[(scheme.id, refused.reason.value)] += 1
                if refused.user_id is not None and refused.key_id is not None:  # an existing key: its usage
                    self.usage.refused(refused.key_id, refused.reason)
                over_budget = await self.count_failure(facts.client_ip, refused.key_id)
                await to_thread.run_sync(partial(
                    self.audit.refusal, "auth.key", refused.reason.value, client_ip=facts.client_ip,
                    user_id=refused.user_id, key_id=refused.key_id,
                    details={"method": facts.method, "path": facts.path[:200]}))
                raise (over_budget or refused.error) from None
            if facts.ratelimit is None:
                facts.ratelimit = ip_window
            if self.metrics is not None:
                self.metrics.auth[(scheme.id, "ok")] += 1
            return principal
        if self.metrics is not None:
            self.metrics.auth[("none", RefusalReason.NO_CREDENTIALS.value)] += 1
        raise Unauthenticated("authentication required")

    async def count_failure(self, client_ip: str | None, key_id: str | None = None) -> RateLimited | None:
        """Count one failed authentication against the client's (and the named key's) failure budget.

        Returns the RateLimited to answer instead of the refusal once a budget is spent, else None.
        The per-IP budget also refuses that IP's next requests before any work (see authenticate);
        the per-key budget only turns further *failures* into 429, so a flood naming a key cannot
        lock its owner out.
        """
        limited: RateLimited | None = None
        for spec, kind, ident in ((self.fail_per_ip, "auth-fail", client_ip or "-"),
                                  (self.fail_per_key, "auth-fail-key", key_id)):
            if ident is None:
                continue
            try:
                await self.limiter.hit(spec, kind, ident[:64])
            except RateLimited as exc:
                limited = limited or exc
        return limited

    async def refresh(self, refresh_token: str, client_ip: str | None) -> TokenPair:
        """Rotate a refresh token (SessionService.refresh) within the client's failure budget.

        Raises RateLimited (429) when the client failed too often, Unauthenticated for a bad token.
        """
        await self.limiter.check(self.fail_per_ip, "auth-fail", client_ip or "-")
        try:
            return await to_thread.run_sync(self.sessions.refresh, refresh_token, client_ip)
        except Unauthenticated as exc:
            raise (await self.count_failure(client_ip) or exc) from None

    # --- key records (shared by the key schemes) -----------------------------------------------

    def cached_record(self, key_id: str) -> KeyRecord | None:
        """Return the cached record of ``key_id`` without waiting (None if not cached or unknown)."""
        try:
            return self.records[key_id]  # (TTLCache.get would look the key up twice)
        except KeyError:
            return None

    async def record(self, key_id: str, *, fresh: bool = False) -> KeyRecord | None:
        """Return the record of ``key_id`` from the cache, or from the database after the TTL or if ``fresh``."""
        if not fresh:
            try:
                return self.records[key_id]
            except KeyError:
                pass
        record = await to_thread.run_sync(self.keys.load_record, key_id)
        self.records[key_id] = record
        return record

    async def key_id_for_hash(self, digest: str) -> str | None:
        """Return the id of the bearer key whose (current or in-grace) secret hashes to ``digest``."""
        try:
            return self.hash_index[digest]
        except KeyError:
            pass
        key_id = await to_thread.run_sync(self.keys.find_key_id_by_secret_hash, digest)
        self.hash_index[digest] = key_id
        return key_id

    @staticmethod
    def hash_matches(record: KeyRecord, digest: str) -> bool:
        """Return True if ``digest`` is the record's bearer hash (or its previous one, in grace)."""
        now = time.time()
        return any(hmac.compare_digest(h, digest) and (until is None or now < until)
                   for h, until in record.secret_hashes)

    @staticmethod
    def hmac_secrets(record: KeyRecord) -> list[str]:
        """Return the record's HMAC secrets usable now (current, and previous during its grace)."""
        now = time.time()
        return [s for s, until in record.hmac_secrets if until is None or now < until]

    async def admit(self, facts: RequestFacts, record: KeyRecord | None, method: AuthMethod,
                    key_id: str | None = None) -> Principal:
        """Apply the checks every key passes (exists, enabled, not expired, IP allowed, rate limit)
        and return its principal. Raises :class:`Refused`."""
        if record is None:
            raise Refused(RefusalReason.UNKNOWN_KEY, key_id=key_id)
        if not record.enabled:
            raise Refused(RefusalReason.DISABLED, user_id=record.user.id, key_id=record.key_id)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise Refused(RefusalReason.EXPIRED, user_id=record.user.id, key_id=record.key_id)
        if record.networks:
            try:
                ip = ipaddress.ip_address(facts.client_ip or "")
            except ValueError:
                ip = None
            if ip is None or not any(ip in net for net in record.networks):
                raise Refused(RefusalReason.IP_NOT_ALLOWED, IpNotAllowed("access denied"), user_id=record.user.id,
                              key_id=record.key_id)
        try:
            limiter = self.limiter
            facts.ratelimit = (limiter.hit_local(self.per_key, "key", record.key_id) if limiter.local
                               else await limiter.hit(self.per_key, "key", record.key_id))
        except RateLimited as exc:
            raise Refused(RefusalReason.RATE_LIMITED, exc, user_id=record.user.id, key_id=record.key_id) from None
        self.usage.touch(record.key_id)
        return record.principal(facts.client_ip, method)

    def refused_record(self, reason: RefusalReason, record: KeyRecord, error: Unauthenticated | None = None) -> Refused:
        """Return a refusal attributed to ``record``'s key and user."""
        return Refused(reason, error or invalid_credentials(), user_id=record.user.id, key_id=record.key_id)
