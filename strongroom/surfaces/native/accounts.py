"""/v1/exchange-accounts: connect, list, get, rename, rotate, enable, disable, revalidate, disconnect."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query

from strongroom.surfaces.deps import CoreDep, CurrentPrincipal
from strongroom.surfaces.native.balances import account_public, accounts_public
from strongroom.surfaces.native.schemas import AccountCreate, AccountPublic, AccountUpdate, PageOut, RotateIn

api = APIRouter(prefix="/exchange-accounts", tags=["exchange accounts"])


@api.post("", response_model=AccountPublic, status_code=201)
async def connect(body: AccountCreate, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    """Check the credentials with the exchange and store them encrypted. Secrets are never returned."""
    account = await core.accounts.connect(principal, body.exchange, body.credentials, name=body.name,
                                          account_type=body.account_type)
    return AccountPublic.model_validate(account)


@api.get("", response_model=PageOut[AccountPublic])
def list_accounts(
    principal: CurrentPrincipal,
    core: CoreDep,
    exchange: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> PageOut[AccountPublic]:
    page = core.accounts.list(principal, exchange=exchange, status=status, cursor=cursor, limit=limit)
    return PageOut(items=accounts_public(core, principal, page.items), next_cursor=page.next_cursor)


@api.get("/{account_id}", response_model=AccountPublic)
def get_account(account_id: int, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    return account_public(core, principal, core.accounts.get(principal, account_id))


@api.patch("/{account_id}", response_model=AccountPublic)
def rename(account_id: int, body: AccountUpdate, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    return account_public(core, principal, core.accounts.rename(principal, account_id, body.name))


@api.delete("/{account_id}", response_model=AccountPublic)
def disconnect(account_id: int, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    """Disconnect (terminal): credentials destroyed, the archived account is returned."""
    return account_public(core, principal, core.accounts.disconnect(principal, account_id))


@api.post("/{account_id}/rotate", response_model=AccountPublic)
async def rotate(account_id: int, body: RotateIn, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    """Replace credentials; the new ones are checked first and the old ones stay until they pass."""
    account = await core.accounts.rotate(principal, account_id, body.credentials)
    return await anyio.to_thread.run_sync(account_public, core, principal, account)


@api.post("/{account_id}/enable", response_model=AccountPublic)
def enable(account_id: int, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    return account_public(core, principal, core.accounts.set_enabled(principal, account_id, True))


@api.post("/{account_id}/disable", response_model=AccountPublic)
def disable(account_id: int, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    return account_public(core, principal, core.accounts.set_enabled(principal, account_id, False))


@api.post("/{account_id}/revalidate", response_model=AccountPublic)
async def revalidate(account_id: int, principal: CurrentPrincipal, core: CoreDep) -> AccountPublic:
    account = await core.accounts.revalidate(principal, account_id)
    return await anyio.to_thread.run_sync(account_public, core, principal, account)
