"""/v1/audit-events: own events; admins see all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from strongroom.surfaces.deps import CoreDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import AuditEventOut, PageOut

api = APIRouter(prefix="/audit-events", tags=["audit"])


@api.get("", response_model=PageOut[AuditEventOut])
def list_events(principal: CurrentPrincipal, core: CoreDep, cursor: str | None = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50, action: str | None = None,
                since: datetime | None = None) -> PageOut[AuditEventOut]:
    page = core.audit.list(principal, cursor=cursor, limit=limit, action=action, since=since)
    return PageOut(items=[AuditEventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor)
