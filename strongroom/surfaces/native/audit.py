"""/v1/audit-events: own events; admins see all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from strongroom.surfaces.deps import AuditDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import AuditEventOut, Cursor, Limit, PageOut

api = APIRouter(prefix="/audit-events", tags=["audit"])


@api.get("", summary="Read the audit log.", response_model=PageOut[AuditEventOut])
async def list_events(principal: CurrentPrincipal, audit: AuditDep, cursor: Cursor = None, limit: Limit = 50,
                      action: Annotated[str | None, Query(description="Only this action (account.connect, "
                                                                      "api_key.create, auth.sign_in, ...).",
                                                          examples=["account.connect"])] = None,
                      since: Annotated[datetime | None, Query(description="Only events at or after this time "
                                                                          "(ISO 8601).")] = None) -> PageOut[AuditEventOut]:
    """The audit log, newest first: the caller's own events (an admin's: everyone's; a key bound to accounts:
    only those about its accounts, the keys it sees and its own actions). Sign-ins, refusals, account and key
    changes; never a secret."""
    page = await audit.list(principal, cursor=cursor, limit=limit, action=action, since=since)
    return PageOut(items=[AuditEventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor)
