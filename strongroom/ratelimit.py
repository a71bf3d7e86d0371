"""Rate limits through ``limits``: in memory by default, Redis when STRONGROOM_REDIS_URL is set.

Also the replay guard for signed requests (claim a signature, give the claim up when the request
fails), which must be shared the same way.
"""

from __future__ import annotations

import logging
import math
import secrets
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse, storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

from strongroom.errors import RateLimited, ServiceUnavailable
from strongroom.metrics import Metrics

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("strongroom.ratelimit")


def _store_failure(exc: Exception) -> bool:
    """Return True if ``exc`` says the shared store did not answer. redis is imported only when
    STRONGROOM_REDIS_URL is set (its import is a tenth of a cold start): without it no RedisError can
    have been raised."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, StorageError)):
        return True
    redis_exceptions = sys.modules.get("redis.exceptions")
    return redis_exceptions is not None and isinstance(exc, redis_exceptions.RedisError)


@contextmanager
def _store_errors() -> Iterator[None]:
    """Turn a failure of the shared store into a 503 with Retry-After (never a 500)."""
    try:
        yield
    except (RateLimited, ServiceUnavailable):
        raise
    except Exception as exc:
        if not _store_failure(exc):
            raise
        log.warning("rate-limit store unavailable: %s", type(exc).__name__)
        raise ServiceUnavailable("a backing service is unavailable; try again shortly", retry_after=5) from None


def _storage_uri(redis_url: str | None) -> tuple[str, dict[str, str]]:
    if redis_url:
        return "async+" + redis_url, {"implementation": "redispy"}
    return "async+memory://", {}  # only parsed and kept for the limits API; counting is local


def _redis_client(url: str) -> Redis:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


# Delete a replay claim only if it is still the caller's (not one taken after it expired).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

# (limit, remaining, seconds until the window resets): what the RateLimit-* headers say
Window = tuple[int, int, int]


@dataclass(slots=True)
class _LocalWindow:
    """One fixed window counted in this process (no Redis)."""

    end: float  # time.monotonic() at which it resets
    count: int
    limit: int
    seconds: int  # its length: a bound of the seconds to reset, which float rounding of end - now may pass


class RateLimiter:
    """Named limits, each a ``limits`` item, checked with :meth:`hit`."""

    def __init__(self, redis_url: str | None, namespace: str = "strongroom") -> None:
        self.namespace = namespace
        self.metrics: Metrics | None = None  # set by the core: rejections by limit
        # The replay guard talks to Redis directly (SET NX EX); limits keeps its own connection pool.
        self._redis = _redis_client(redis_url) if redis_url else None
        uri, options = _storage_uri(redis_url)
        self._fixed = FixedWindowRateLimiter(storage.storage_from_string(uri, key_prefix=namespace, **options))
        self.storage = self._fixed.storage  # the same object, typed as the async storage it is (an async+ URI)
        self._items: dict[str, RateLimitItem] = {}
        self._keys: dict[tuple[str, tuple[str, ...]], str] = {}  # (spec, identifiers) -> storage key
        # Replay guard without Redis: key -> expiry, plus the keys in expiry order. limits' memory
        # moving window would keep a list per signature and expire them with one thread hop per key,
        # over and over: at 2,000 signed requests/s that background work outweighs the requests.
        self.local = redis_url is None  # counting in this process (no Redis): the sync *_local methods apply
        # Fixed windows without Redis, by (spec, identifiers). limits' async
        # memory storage starts a task on every increment that walks every stored key; at a few
        # thousand requests/s that costs more than the rest of authentication (see BENCHMARKS.md).
        self._windows: dict[tuple[str, tuple[str, ...]], _LocalWindow] = {}
        # The windows of each spec in the order they were opened: all of one spec are equally long, so
        # this is also their expiry order. Each new window drops up to two expired ones from the front
        # (amortised O(1)), so the map holds about the windows opened in one window's length.
        self._opened: dict[str, deque[tuple[tuple[str, ...], _LocalWindow]]] = {}
        self._seen: dict[str, float] = {}
        self._seen_order: deque[tuple[float, str]] = deque()

    def item(self, spec: str) -> RateLimitItem:
        if spec not in self._items:
            self._items[spec] = parse(spec)
        return self._items[spec]

    async def hit(self, spec: str, *identifiers: str) -> Window:
        """Count one request; return the window ``(limit, remaining, seconds to reset)``.

        Raises RateLimited (with retry_after seconds) when over ``spec``, ServiceUnavailable (503)
        when the shared store (Redis) does not answer. ``identifiers[0]`` names the limit (ip, key,
        ...) in the rejection metrics.
        """
        if self.local:
            return self.hit_local(spec, *identifiers)
        try:
            with _store_errors():
                return await self._hit(spec, *identifiers)
        except RateLimited:
            if self.metrics is not None:
                self.metrics.rate_limited[identifiers[0] if identifiers else spec] += 1
            raise

    def hit_local(self, spec: str, *identifiers: str) -> Window:
        """:meth:`hit` without Redis (``local`` is True): synchronous, no coroutine on the hot path."""
        try:
            return self._hit_local(spec, identifiers)
        except RateLimited:
            if self.metrics is not None:
                self.metrics.rate_limited[identifiers[0] if identifiers else spec] += 1
            raise

    def enter_local(self, spec: str, fail_spec: str, ip: str) -> tuple[Window, RateLimited | None]:
        """``hit_local(spec, "ip", ip)`` and ``check_local(fail_spec, "auth-fail", ip)`` in one call (what
        authentication asks of every request): the IP's window, and the RateLimited its spent failure
        budget answers (None while budget remains). Raises RateLimited when over ``spec``."""
        try:
            window = self._hit_local(spec, ("ip", ip))
        except RateLimited:
            if self.metrics is not None:
                self.metrics.rate_limited["ip"] += 1
            raise
        failures = self._windows.get((fail_spec, ("auth-fail", ip)))
        if failures is not None and failures.count >= failures.limit:
            now = time.monotonic()
            if now < failures.end:
                return window, RateLimited("too many requests", retry_after=max(1, math.ceil(failures.end - now)))
        return window, None

    def check_local(self, spec: str, *identifiers: str) -> None:
        """:meth:`check` without Redis (``local`` is True): synchronous."""
        window = self._windows.get((spec, identifiers))
        if window is not None and window.count >= window.limit:
            now = time.monotonic()
            if now < window.end:
                raise RateLimited("too many requests", retry_after=max(1, math.ceil(window.end - now)))

    def _hit_local(self, spec: str, identifiers: tuple[str, ...]) -> Window:
        window = self._windows.get((spec, identifiers))
        now = time.monotonic()
        if window is None or now >= window.end:
            item = self.item(spec)
            window = self._windows[(spec, identifiers)] = _LocalWindow(now + item.get_expiry(), 0, item.amount,
                                                                       item.get_expiry())
            opened = self._opened.get(spec)
            if opened is None:
                opened = self._opened[spec] = deque()
            windows = self._windows
            for _ in range(2):  # two out for each one in: the backlog of expired windows shrinks
                if not opened or opened[0][1].end > now:
                    break
                old_ids, old = opened.popleft()
                if windows.get((spec, old_ids)) is old:  # (not reopened or cleared since)
                    del windows[(spec, old_ids)]
            opened.append((identifiers, window))
        window.count += 1
        if window.count > window.limit:
            raise RateLimited("too many requests", retry_after=max(1, math.ceil(window.end - now)))
        # (now + 60) - now can be 60.000000000000455: the ceiling would say 61 s of a 60 s window
        return window.limit, window.limit - window.count, min(math.ceil(window.end - now), window.seconds)

    async def _hit(self, spec: str, *identifiers: str) -> Window:
        item = self.item(spec)
        # What FixedWindowRateLimiter.hit does, with the storage key memoised: building it (key_for)
        # cost as much as the counting, and this runs twice per authenticated request.
        key = self._keys.get((spec, identifiers))
        if key is None:
            if len(self._keys) >= 100_000:
                self._keys.clear()
            key = self._keys[(spec, identifiers)] = item.key_for(*identifiers)
        count = await self.storage.incr(key, item.get_expiry(), amount=1)
        if count > item.amount:
            reset, _ = await self._fixed.get_window_stats(item, *identifiers)
            raise RateLimited("too many requests", retry_after=max(1, math.ceil(reset - time.time())))
        # the reset is not asked of Redis on every hit (another round trip): the window's length bounds it
        return item.amount, item.amount - count, item.get_expiry()

    async def check(self, spec: str, *identifiers: str) -> None:
        """Raise RateLimited if ``spec`` is already exhausted, without counting a hit."""
        if self.local:
            self.check_local(spec, *identifiers)
            return
        item = self.item(spec)
        with _store_errors():
            if not await self._fixed.test(item, *identifiers):
                reset, _ = await self._fixed.get_window_stats(item, *identifiers)
                raise RateLimited("too many requests", retry_after=max(1, math.ceil(reset - time.time())))

    async def clear(self, spec: str, *identifiers: str) -> None:
        if self.local:
            self._windows.pop((spec, identifiers), None)
            return
        await self._fixed.clear(self.item(spec), *identifiers)

    async def ping(self) -> bool:
        """Return True if the shared store answers (always True without Redis)."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.ping())
        except Exception as exc:
            if not _store_failure(exc):
                raise
            log.warning("readiness: redis check failed: %s", type(exc).__name__)
            return False

    async def claim_once(self, key: str, ttl_seconds: int) -> str | float | None:
        """Claim ``key`` for ``ttl_seconds``: return a token the first time (pass it to
        :meth:`release` to give the claim up), None while the key is claimed (a replay).

        With Redis: one ``SET key token NX EX ttl`` (atomic across processes). Raises
        ServiceUnavailable (503) when Redis does not answer.
        """
        if self._redis is not None:
            token = secrets.token_hex(8)
            with _store_errors():
                claimed = await self._redis.set(f"{self.namespace}:replay:{key}", token, nx=True, ex=ttl_seconds)
            return token if claimed else None
        return self.claim_once_local(key, ttl_seconds)

    def claim_once_local(self, key: str, ttl_seconds: int) -> float | None:
        """:meth:`claim_once` without Redis (``local`` is True): synchronous."""
        now = time.monotonic()
        seen, order = self._seen, self._seen_order
        while order and order[0][0] <= now:  # drop expired keys: amortised O(1) per call
            expiry, old = order.popleft()
            if seen.get(old) == expiry:
                del seen[old]
        until = seen.get(key)
        if until is not None and until > now:
            return None
        seen[key] = until = now + ttl_seconds
        order.append((until, key))
        return until  # the claim's expiry is its token (a later claim has a later one)

    async def release(self, key: str, token: str | float) -> None:
        """Give up the claim ``token`` of :meth:`claim_once` on ``key`` (not a later claim of the
        same key). Raises ServiceUnavailable (503) when Redis does not answer."""
        if self._redis is not None:
            with _store_errors():
                await self._redis.eval(_RELEASE, 1, f"{self.namespace}:replay:{key}", token)
            return
        if self._seen.get(key) == token:
            del self._seen[key]  # its entry in _seen_order is skipped when it comes up
