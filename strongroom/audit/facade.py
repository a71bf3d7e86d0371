"""The audit capability's façade (:class:`strongroom.audit.interfaces.Audit`, whose docstrings are the
contract): async, over the synchronous engine :class:`~strongroom.audit.services.AuditService`, whose database
work runs here in a worker thread, once per call, never in a surface."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import anyio.to_thread

from strongroom.audit.services import AuditService
from strongroom.models import AuditEvent
from strongroom.pagination import Page
from strongroom.principal import Principal


class AuditFacade:
    """The audit façade over ``engine`` (see :class:`strongroom.audit.interfaces.Audit`)."""

    def __init__(self, engine: AuditService) -> None:
        self.engine = engine

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50,
                   action: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   outcome: str | None = None, user_id: int | None = None) -> Page[AuditEvent]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.list, principal, cursor=cursor, limit=limit, action=action, since=since, until=until,
            outcome=outcome, user_id=user_id))

    async def record_now(self, action: str, outcome: str, *, principal: Principal | None = None,
                         target: str | None = None, details: dict[str, Any] | None = None) -> None:
        await anyio.to_thread.run_sync(functools.partial(
            self.engine.record_now, action, outcome, principal=principal, target=target, details=details))
