"""/v1/events: what happened (keys, exchange accounts, balances, the master key), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from strongroom.surfaces.deps import CurrentPrincipal, EventsDep
from strongroom.surfaces.native.schemas import Cursor, EventOut, Limit, PageOut

api = APIRouter(prefix="/events", tags=["events"])

TypeFilter = Annotated[list[str] | None, Query(
    description="Only events of these types: repeat the parameter or give a comma list (api_key.revoked, "
                "exchange_account.invalidated, ...). An unknown type is 422.",
    examples=["api_key.created,api_key.revoked"])]


@api.get("", summary="List events.", response_model=PageOut[EventOut])
async def list_events(principal: CurrentPrincipal, events: EventsDep, type: TypeFilter = None, cursor: Cursor = None,
                limit: Limit = 50) -> PageOut[EventOut]:
    """Events, newest first, a page at a time: the caller's own (an admin's: everyone's and the deployment's,
    such as ``master_key.rotated``; a key bound to accounts: only those about its accounts and the keys it
    sees). Each is written in the transaction of the change it describes. Never a secret."""
    page = await events.list(principal, types=type, cursor=cursor, limit=limit)
    return PageOut(items=[EventOut.of(e) for e in page.items], next_cursor=page.next_cursor)
