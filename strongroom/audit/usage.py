"""Key usage, as Unkey users expect: when each key was last used, and per key and hour how its
verifications ended (ok, rate limited, IP refused, expired, disabled, bad signature). Counted in
memory on the request path and written in batches by the housekeeping task, never per request."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

from strongroom.enums import RefusalReason

log = logging.getLogger("strongroom.usage")

OUTCOMES = ("ok", "rate_limited", "ip_refused", "expired", "disabled", "bad_signature")
# A refusal of an existing key, by the outcome it is counted as (others are not the key's usage).
REFUSAL_OUTCOMES: dict[RefusalReason, str] = {
    RefusalReason.RATE_LIMITED: "rate_limited",
    RefusalReason.IP_NOT_ALLOWED: "ip_refused",
    RefusalReason.EXPIRED: "expired",
    RefusalReason.DISABLED: "disabled",
    RefusalReason.BAD_SIGNATURE: "bad_signature",
    RefusalReason.STALE_TIMESTAMP: "bad_signature",
    RefusalReason.REPLAYED_SIGNATURE: "bad_signature",
    RefusalReason.BAD_SECRET: "bad_signature",
}


class UsageStore(Protocol):
    """Where the batches go: the keys capability's engine (``ApiKeyService``)."""

    def record_last_used(self, used: dict[str, float]) -> None: ...

    def record_usage(self, counts: Mapping[tuple[str, int, str], int]) -> None: ...


class UsageRecorder:
    """Remembers key use in memory; :meth:`flush` writes ``last_used_at`` and the hourly counts."""

    def __init__(self, keys: UsageStore) -> None:
        self.keys = keys
        self._pending: dict[str, float] = {}
        self._counts: Counter[tuple[str, int, str]] = Counter()  # (key id, epoch hour, outcome)
        # one flush at a time: a flush that finds another writing waits for it, so when it returns
        # everything counted before it was called is written (the periodic flush and an explicit one race)
        self._flush_lock = threading.Lock()

    def touch(self, key_id: str) -> None:
        """A verification of ``key_id`` succeeded."""
        now = time.time()
        self._pending[key_id] = now
        self._counts[(key_id, int(now // 3600), "ok")] += 1

    def refused(self, key_id: str, reason: RefusalReason) -> None:
        """A verification of the existing key ``key_id`` was refused for ``reason``."""
        outcome = REFUSAL_OUTCOMES.get(reason)
        if outcome is not None:
            self._counts[(key_id, int(time.time() // 3600), outcome)] += 1

    def flush(self) -> int:
        """Write pending timestamps and counts; return how many keys were touched. Never raises.

        Waits for a flush in flight (in another thread) to finish first.
        """
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        batch, self._pending = self._pending, {}
        counts, self._counts = self._counts, Counter()
        try:
            if batch:
                self.keys.record_last_used(batch)
            if counts:
                self.keys.record_usage(counts)
        except Exception as exc:  # noqa: BLE001 - never raises (a periodic task); logs the type only: a
            # database error's text carries parameters
            log.error("could not write key usage: %s", type(exc).__name__)
        return len(batch)
