"""The audit capability's contract: the audit log as surfaces, the HTTP kit and the console read and write it
(the docstrings are the contract).

Every method is async: the database work runs in a worker thread inside the façade, once per call, never in a
surface. What an operation audits is written by the capability that does it, in the operation's own
transaction; this façade writes only events whose operation did not happen (refusals). Key usage counts are
the keys capability's (``Keys.usage``). Events never hold a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from strongroom.models import AuditEvent
from strongroom.pagination import Page
from strongroom.principal import Principal


class Audit(Protocol):
    """The audit log: read it (what the caller may read), and record a refusal."""

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50,
                   action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   outcome: str | None = None, user_id: int | None = None) -> Page[AuditEvent]:
        """Return a page of the events the caller may read, newest first: its own (an admin: everyone's; a key
        bound to accounts: those about its accounts, the keys it sees and its own actions), of ``action``,
        ``outcome`` and acting ``user_id`` if given, ``since <= at <= until``. Raises InsufficientScope (no
        ``read``), ValidationFailed (cursor, limit)."""
        ...

    async def record_now(self, action: str, outcome: str, *, principal: Principal | None = None,
                         target: str | None = None, details: dict[str, Any] | None = None) -> None:
        """Write one event in its own transaction (a refusal, whose operation rolled back). Never raises: a
        failure to write is logged (its type only), so that auditing never turns a refusal into a 500."""
        ...
