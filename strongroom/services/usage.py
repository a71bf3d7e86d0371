"""Key usage: when keys were used, written in batches (never one write per request)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strongroom.services.apikeys import ApiKeyService

log = logging.getLogger("strongroom.usage")


class UsageRecorder:
    """Remembers when keys were used and writes ``last_used_at`` in batches (:meth:`flush`, run by
    the housekeeping task), never per request."""

    def __init__(self, keys: ApiKeyService) -> None:
        self.keys = keys
        self._pending: dict[str, float] = {}

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
