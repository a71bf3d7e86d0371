"""One authentication pipeline for every surface: a request in, a Principal out.

A surface declares the schemes it accepts (strongroom.auth.schemes), in order. The pipeline
counts the request against the per-IP limit, refuses a request that carries two different
credentials, lets the first scheme that claims the request verify it (against this
:class:`~strongroom.auth.directory.KeyDirectory`), admits the scheme's claim (:meth:`Authenticator.admit`),
and audits a refusal with its reason; the caller only learns 400, 401, 403 or 429.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Literal

from anyio import to_thread
from cachetools import TTLCache

from strongroom.auth.facts import RequestFacts
from strongroom.auth.schemes.base import AuthScheme, Refused, invalid_signature, refused_key
from strongroom.enums import AuthMethod, RefusalReason
from strongroom.errors import AmbiguousCredentials, IpNotAllowed, RateLimited, ServiceUnavailable, Unauthenticated
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.audit.services import AuditService
    from strongroom.audit.usage import UsageRecorder
    from strongroom.auth.directory import Claim
    from strongroom.keys.services import ApiKeyService, KeyRecord
    from strongroom.metrics import Metrics
    from strongroom.ratelimit import RateLimiter
    from strongroom.settings import Settings
    from strongroom.users.services import UserService, UserSnapshot
    from strongroom.users.sessions import SessionService, TokenPair

log = logging.getLogger("strongroom.auth")

# How long a bearer secret or access token that resolved stays worth verifying for an address
# that spent its failure budget (a failure window is at most this long in practice).
VOUCHED_SECONDS = 3600


class Authenticator:
    """Authenticates requests with the schemes a surface accepts; owns the key-record cache.

    It is the :class:`~strongroom.auth.directory.KeyDirectory` schemes verify against.
    """

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
        self.replay_ttl = 2 * settings.signature_window_seconds + 1
        self.key_prefix = keys.prefix
        self.hasher = keys.hasher
        self.per_ip, self.per_key = settings.rate_limit_per_ip, settings.rate_limit_per_key
        self.fail_per_ip, self.fail_per_key = settings.auth_failures_per_ip, settings.auth_failures_per_key
        # addresses whose failures are never budgeted (trusted backends)
        self.exempt = tuple(ipaddress.ip_network(c, strict=False) for c in settings.auth_failure_exempt_networks)
        self.metrics: Metrics | None = None  # set by the core: outcomes by scheme
        # Bounded by size (least recently used out first) and by age (revocation reaches every process
        # within the TTL). A key change in this process drops its record at once (forget).
        ttl, size = settings.key_cache_ttl_seconds, settings.key_cache_size
        self.records: TTLCache[str, KeyRecord | None] = TTLCache(maxsize=size, ttl=ttl)
        self.hash_index: TTLCache[str, str | None] = TTLCache(maxsize=size, ttl=ttl)
        # digests of bearer secrets and access tokens that resolved to a live key or session: what an
        # address that spent its failure budget may still try (filled on the database path only)
        self.known: TTLCache[str, bool] = TTLCache(maxsize=size, ttl=VOUCHED_SECONDS)
        # bearer secrets that verified, by the exact secret: (digest, key id); a warm key skips the
        # peppered hash (the record is still checked on every use). Oldest out past ``size``.
        self.warm_tokens: dict[str, tuple[str, str]] = {}
        self.warm_size = size
        # keys whose failure budget was spent in this window: its event is written (see _budget_exhausted)
        self.exhausted: TTLCache[str, bool] = TTLCache(
            maxsize=size, ttl=limiter.item(self.fail_per_key).get_expiry())
        self.forgets = 0  # keys dropped so far: a record read from the database meanwhile is not cached
        keys.listeners.append(self.forget)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (other processes refresh within the TTL).

        Hash-index entries pointing at the key may stay: every use re-checks the key's record.
        """
        self.forgets += 1
        self.records.pop(key_id, None)

    # --- entry point -----------------------------------------------------------------------------

    async def authenticate(self, facts: RequestFacts, schemes: Iterable[AuthScheme]) -> Principal:
        """Return the principal of ``facts`` by the first of ``schemes`` that claims it.

        Raises AmbiguousCredentials (400: two different credentials), Unauthenticated (401: no,
        unknown, expired, disabled or badly signed credentials), Forbidden (403: client IP outside
        the key's allowlist), RateLimited (429) or ServiceUnavailable (503: the shared rate-limit
        store does not answer). A signature claimed once (``facts.replay``) is the caller's to
        :meth:`release` if the request then fails.
        """
        ip = facts.client_ip or "-"
        limiter = self.limiter
        spent: RateLimited | None = None  # the IP's failure budget, when spent: only cheap checks remain
        if limiter.local:  # the common case: no coroutines for in-process counting, one call
            ip_window, spent = limiter.enter_local(self.per_ip, self.fail_per_ip, ip)
            if spent is not None and self.exempted(facts.client_ip):
                spent = None
        else:
            ip_window = await limiter.hit(self.per_ip, "ip", ip)
            try:
                await limiter.check(self.fail_per_ip, "auth-fail", ip)
            except RateLimited as exc:
                spent = None if self.exempted(facts.client_ip) else exc
        if facts.ambiguous():
            raise AmbiguousCredentials("the request carries more than one credential; send one")
        for scheme in schemes:
            if not scheme.claims(facts):
                continue
            try:
                if spent is not None and not scheme.vouched(facts, self):
                    # over the failure budget: only credentials that verified recently are worth
                    # verifying (the other users behind a NAT); nothing expensive for the rest
                    raise spent
                if scheme.reads_body:
                    await facts.read_body()
                claim = await scheme.authenticate(facts, self)
                principal = claim.principal
                if principal is None:
                    if claim.replay_key is not None:
                        await self.claim_signature(facts, claim)
                    principal = await self.admit(facts, claim.record, claim.method, claim.key_id)
            except Refused as refused:
                facts.refusal = refused.reason
                await self.release(facts)
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
            except BaseException:
                await self.release(facts)
                raise
            if facts.ratelimit is None:
                facts.ratelimit = ip_window
            if self.metrics is not None:
                self.metrics.auth[(scheme.id, "ok")] += 1
            return principal
        if spent is not None:
            raise spent
        facts.refusal = RefusalReason.NO_CREDENTIALS
        if self.metrics is not None:
            self.metrics.auth[("none", RefusalReason.NO_CREDENTIALS.value)] += 1
        raise Unauthenticated("authentication required")

    def exempted(self, client_ip: str | None) -> bool:
        """Return True if ``client_ip`` is in STRONGROOM_AUTH_FAILURE_EXEMPT_NETWORKS (never budgeted)."""
        if not self.exempt or not client_ip:
            return False
        try:
            ip = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(ip in net for net in self.exempt)

    async def count_failure(self, client_ip: str | None, key_id: str | None = None) -> RateLimited | None:
        """Count one failed authentication against the client's (and the named key's) failure budget.

        Returns the RateLimited to answer instead of the refusal once a budget is spent, else None.
        Once the per-IP budget is spent, that IP's next requests pass only with credentials that
        verify from memory (see authenticate); the per-key budget only turns further *failures*
        into 429, so a flood naming a key cannot lock its owner out. Addresses in
        STRONGROOM_AUTH_FAILURE_EXEMPT_NETWORKS have no per-IP budget.
        """
        limited: RateLimited | None = None
        ip_ident = None if self.exempted(client_ip) else client_ip or "-"
        for spec, kind, ident in ((self.fail_per_ip, "auth-fail", ip_ident),
                                  (self.fail_per_key, "auth-fail-key", key_id)):
            if ident is None:
                continue
            try:
                await self.limiter.hit(spec, kind, ident[:64])
            except RateLimited as exc:
                limited = limited or exc
                if kind == "auth-fail-key":
                    await self._budget_exhausted(ident[:64], exc)
        return limited

    async def _budget_exhausted(self, key_id: str, exc: RateLimited) -> None:
        """Write the key's ``api_key.failure_budget_exhausted`` once per window (ApiKeyService.budget_exhausted):
        at the first refusal of a window in this process, in its own transaction. Never raises: a database
        fault leaves the event to the window's next refusal, and the answer stays the 429."""
        if key_id in self.exhausted:
            return
        window = int(self.limiter.item(self.fail_per_key).get_expiry())
        ends = time.time() + (exc.retry_after or window)
        try:
            await to_thread.run_sync(self.keys.budget_exhausted, key_id, window, ends)
        except Exception as db_exc:  # noqa: BLE001 - the type only (a database error's text carries parameters)
            log.warning("could not write api_key.failure_budget_exhausted: %s", type(db_exc).__name__)
            return
        self.exhausted[key_id] = True

    async def refresh(self, refresh_token: str, client_ip: str | None) -> TokenPair:
        """Rotate a refresh token (SessionService.refresh) within the client's failure budget.

        Raises RateLimited (429) when the client failed too often, Unauthenticated for a bad token.
        """
        if not self.exempted(client_ip):
            await self.limiter.check(self.fail_per_ip, "auth-fail", client_ip or "-")
        try:
            return await to_thread.run_sync(self.sessions.refresh, refresh_token, client_ip)
        except Unauthenticated as exc:
            raise (await self.count_failure(client_ip) or exc) from None

    # --- the replay guard ----------------------------------------------------------------------

    async def claim_signature(self, facts: RequestFacts, claim: Claim) -> None:
        """Claim the signature of ``claim`` as in flight (atomically: a concurrent duplicate is
        refused). The claim stays if the request succeeds (a later replay is refused) and is
        given up by :meth:`release` if it fails, so that the same request may be retried."""
        key, record = claim.replay_key, claim.record
        if key is None or record is None:
            return
        limiter = self.limiter
        token: str | float | None = (limiter.claim_once_local(key, self.replay_ttl) if limiter.local
                 else await limiter.claim_once(key, self.replay_ttl))
        if token is None:
            raise refused_key(RefusalReason.REPLAYED_SIGNATURE, record, invalid_signature())
        facts.replay = (key, token)

    async def release(self, facts: RequestFacts) -> None:
        """Give up the signature ``facts`` claimed, if any (its request failed). Never raises: a
        store that does not answer leaves the claim to expire."""
        replay = facts.replay
        if replay is None:
            return
        facts.replay = None
        try:
            await self.limiter.release(*replay)
        except ServiceUnavailable:
            log.warning("a failed request's signature claim could not be released; it expires on its own")

    # --- the key directory (what schemes verify against) ---------------------------------------

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
        forgets = self.forgets
        record = await to_thread.run_sync(self.keys.load_record, key_id)
        # not if a key changed in this process during the read: a record read before a revocation committed
        # and cached after it was dropped would keep the revoked key alive here until the entry aged out
        if self.forgets == forgets:
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
        if key_id is not None:
            self.known[digest] = True
        return key_id

    def remember_token(self, token: str, digest: str, key_id: str) -> None:
        """Remember that the bearer secret ``token`` hashes to ``digest``, the secret of ``key_id``."""
        warm = self.warm_tokens
        if token not in warm and len(warm) >= self.warm_size:
            del warm[next(iter(warm))]  # oldest out
        warm[token] = (digest, key_id)

    def forget_token(self, token: str) -> None:
        """Forget the bearer secret ``token`` (its key's record no longer takes it)."""
        self.warm_tokens.pop(token, None)

    def vouched(self, digest: str) -> bool:
        """Return True if ``digest`` resolved to a key or session in the last VOUCHED_SECONDS."""
        return digest in self.known

    async def sign_in(self, username: str, password: str, client_ip: str | None, method: AuthMethod) -> Principal:
        """Return the principal of a user's password (UserService.sign_in)."""
        return await self.users.sign_in(username, password, client_ip, scheme=method)

    def cached_session(self, access_token: str) -> UserSnapshot | Literal[False] | None:
        """Return an access token's user from memory (SessionService.resolve_cached)."""
        return self.sessions.resolve_cached(access_token)

    async def session(self, access_token: str) -> UserSnapshot | None:
        """Return the user of a live access token (SessionService.resolve, in a worker thread)."""
        snap = await to_thread.run_sync(self.sessions.resolve, access_token)
        if snap is not None:
            self.known[self.hasher.token(access_token)] = True
        return snap

    # --- admission -----------------------------------------------------------------------------

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
