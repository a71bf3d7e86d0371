"""Rate limits through ``limits``: in memory by default, Redis when STRONGROOM_REDIS_URL is set.

Also the replay guard for signed requests, which must be shared the same way.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from strongroom.errors import RateLimited


def _storage_uri(redis_url: str | None) -> tuple[str, dict]:
    if redis_url:
        return "async+" + redis_url, {"implementation": "redispy"}
    return "async+memory://", {}


class RateLimiter:
    """Named limits, each a ``limits`` item, checked with :meth:`hit`."""

    def __init__(self, redis_url: str | None, namespace: str = "strongroom") -> None:
        uri, options = _storage_uri(redis_url)
        self.storage = storage.storage_from_string(uri, key_prefix=namespace, **options)
        self._fixed = FixedWindowRateLimiter(self.storage)
        self._moving = MovingWindowRateLimiter(self.storage)
        self._items: dict[str, RateLimitItem] = {}

    def item(self, spec: str) -> RateLimitItem:
        if spec not in self._items:
            self._items[spec] = parse(spec)
        return self._items[spec]

    async def hit(self, spec: str, *identifiers: str) -> None:
        """Count one request; raise RateLimited (with retry_after seconds) when over ``spec``."""
        item = self.item(spec)
        if not await self._fixed.hit(item, *identifiers):
            reset, _ = await self._fixed.get_window_stats(item, *identifiers)
            raise RateLimited("too many requests", retry_after=max(1, math.ceil(reset - time.time())))

    async def check(self, spec: str, *identifiers: str) -> None:
        """Raise RateLimited if ``spec`` is already exhausted, without counting a hit."""
        item = self.item(spec)
        if not await self._fixed.test(item, *identifiers):
            reset, _ = await self._fixed.get_window_stats(item, *identifiers)
            raise RateLimited("too many requests", retry_after=max(1, math.ceil(reset - time.time())))

    async def clear(self, spec: str, *identifiers: str) -> None:
        await self._fixed.clear(self.item(spec), *identifiers)

    async def seen_once(self, key: str, ttl_seconds: int) -> bool:
        """Return True the first time ``key`` is seen within ``ttl_seconds``, False on a replay."""
        item = self.item(f"1/{ttl_seconds} second")
        return await self._moving.hit(item, "replay", key)
