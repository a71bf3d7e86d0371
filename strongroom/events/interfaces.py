"""The events capability's contract: the event log as surfaces read it (the docstrings are the contract).

Every method is async: the database work runs in a worker thread inside the façade, once per call, never in a
surface. Events are written by the capabilities, in the transaction of their change
(:func:`strongroom.events.record`), never through this contract. Events never hold a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from strongroom.models import Event
from strongroom.pagination import Page
from strongroom.principal import Principal


class Events(Protocol):
    """The event log, read by the caller's rights."""

    async def list(self, principal: Principal, *, types: Iterable[str] | None = None, cursor: str | None = None,
                   limit: int = 50) -> Page[Event]:
        """Return a page of the events ``principal`` may read, newest first, of ``types`` (None: all): its own (an
        admin: everyone's and the deployment's; a key bound to accounts: those about its accounts and the keys it
        sees). Raises InsufficientScope (no ``read``), ValidationFailed (unknown type, cursor, limit)."""
        ...
