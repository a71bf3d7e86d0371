"""/v1/exchange-accounts: connect, list, get, rename, rotate, enable, disable, revalidate, disconnect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from strongroom.accounts import AccountQuery, ByCursor
from strongroom.enums import AccountStatus
from strongroom.errors import (
    AlreadyConnected,
    Conflict,
    CredentialsUnreadable,
    ExchangeUnavailable,
    InvalidCredentials,
    WithdrawalPermission,
)
from strongroom.surfaces.deps import AccountsDep, BalancesDep, CurrentPrincipal
from strongroom.surfaces.native.balances import account_public, accounts_public
from strongroom.surfaces.native.schemas import (
    AccountCreate,
    AccountId,
    AccountPublic,
    AccountUpdate,
    Cursor,
    Limit,
    PageOut,
    RotateIn,
)
from strongroom.surfaces.openapi import body_example, raises
from strongroom.surfaces.wire import one_of

api = APIRouter(prefix="/exchange-accounts", tags=["exchange accounts"])

# what checking a key live with the exchange can answer
LIVE_CHECK = (InvalidCredentials, WithdrawalPermission, ExchangeUnavailable)


@api.post("", summary="Connect an exchange account.", response_model=AccountPublic, status_code=201)
@raises(*LIVE_CHECK, AlreadyConnected, Conflict)
async def connect(body: AccountCreate, principal: CurrentPrincipal, accounts: AccountsDep) -> AccountPublic:
    """Connect an exchange account: the credentials are checked live with the exchange (400
    ``invalid_credentials``, 400 ``withdrawal_permission`` for a key that can withdraw, 503 when the
    exchange does not answer) and stored encrypted; they are never returned. ``credentials`` holds the
    venue's fields: ``GET /v1/exchanges/{exchange}`` lists them. A key connected already (by anyone) is 409.
    Venues that cannot be checked live are stored as ``unverified``."""
    account = await accounts.connect(principal, body.exchange, body.credentials, name=body.name,
                                          account_type=body.account_type)
    return AccountPublic.model_validate(account)


@api.get("", summary="List your exchange accounts.", response_model=PageOut[AccountPublic])
async def list_accounts(
    principal: CurrentPrincipal,
    accounts: AccountsDep,
    balances: BalancesDep,
    exchange: Annotated[str | None, Query(description="Only this venue (catalogue id or alias).",
                                          examples=["binance"])] = None,
    status: Annotated[str | None, Query(description="Only accounts in this status."), one_of(AccountStatus)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> PageOut[AccountPublic]:
    """The caller's exchange accounts (an admin's: everyone's), disconnected ones too, a page at a time,
    each with its last balance snapshot's totals. A key bound to accounts sees only those."""
    query = AccountQuery(exchange=exchange, statuses=[status] if status else None)
    page = await accounts.find(principal, query, ByCursor(cursor, limit))
    items = await accounts_public(balances, principal, page.items)
    return PageOut(items=items, next_cursor=page.next_cursor)


@api.get("/{account_id}", summary="Read an exchange account.", response_model=AccountPublic)
async def get_account(account_id: AccountId, principal: CurrentPrincipal, accounts: AccountsDep,
                      balances: BalancesDep) -> AccountPublic:
    """One exchange account (404 for another user's)."""
    account = await accounts.get(principal, account_id)
    return await account_public(balances, principal, account)


@api.patch("/{account_id}", summary="Rename an exchange account.",
           openapi_extra=body_example({"name": "Binance savings"}), response_model=AccountPublic)
@raises(Conflict)
async def rename(account_id: AccountId, body: AccountUpdate, principal: CurrentPrincipal, accounts: AccountsDep,
                 balances: BalancesDep) -> AccountPublic:
    """Rename an account (409 if it is disconnected)."""
    account = await accounts.rename(principal, account_id, body.name)
    return await account_public(balances, principal, account)


@api.delete("/{account_id}", response_model=AccountPublic,
            summary="Disconnect an exchange account and destroy its credentials.")
@raises(Conflict)
async def disconnect(account_id: AccountId, principal: CurrentPrincipal, accounts: AccountsDep,
                     balances: BalancesDep) -> AccountPublic:
    """Disconnect (terminal): credentials destroyed, the archived account is returned."""
    account = await accounts.disconnect(principal, account_id)
    return await account_public(balances, principal, account)


@api.post("/{account_id}/rotate", summary="Replace an account's credentials.", response_model=AccountPublic,
          openapi_extra=body_example({
              "credentials": {"api_key": "your-new-binance-api-key", "secret": "your-new-binance-secret"}}))
@raises(*LIVE_CHECK, AlreadyConnected, Conflict)
async def rotate(account_id: AccountId, body: RotateIn, principal: CurrentPrincipal, accounts: AccountsDep,
                 balances: BalancesDep) -> AccountPublic:
    """Replace credentials; the new ones are checked first and the old ones stay until they pass."""
    account = await accounts.rotate(principal, account_id, body.credentials)
    return await account_public(balances, principal, account)


@api.post("/{account_id}/enable", summary="Enable a disabled account.", response_model=AccountPublic)
@raises(Conflict)
async def enable(account_id: AccountId, principal: CurrentPrincipal, accounts: AccountsDep,
                 balances: BalancesDep) -> AccountPublic:
    """Enable a disabled account: its status follows its last live check again (409 if it is disconnected)."""
    account = await accounts.set_enabled(principal, account_id, True)
    return await account_public(balances, principal, account)


@api.post("/{account_id}/disable", summary="Disable an account.", response_model=AccountPublic)
@raises(Conflict)
async def disable(account_id: AccountId, principal: CurrentPrincipal, accounts: AccountsDep,
                  balances: BalancesDep) -> AccountPublic:
    """Disable an account (reversible with enable; 409 if it is disconnected)."""
    account = await accounts.set_enabled(principal, account_id, False)
    return await account_public(balances, principal, account)


@api.post("/{account_id}/revalidate", response_model=AccountPublic,
          summary="Check an account's credentials with the exchange again.")
@raises(ExchangeUnavailable, Conflict, CredentialsUnreadable)
async def revalidate(account_id: AccountId, principal: CurrentPrincipal, accounts: AccountsDep,
                     balances: BalancesDep) -> AccountPublic:
    """Check the stored credentials with the exchange again: the account becomes ``active``, ``invalid``
    (refused) or ``suspended`` (the key can withdraw), returned, not raised; 503 if the exchange does not
    answer (nothing changes), 409 if the account is disconnected."""
    account = await accounts.revalidate(principal, account_id)
    return await account_public(balances, principal, account)
