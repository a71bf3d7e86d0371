"""/v1 balances (issue 9): an account's last snapshot or a live load, its history, the portfolio.

Every amount, price and value is a decimal string (``"31200"``, ``"0.624"``), never a number.
Scope ``read``; a key bound to accounts sees only those (404 for the others). The rules live in
``strongroom.balances.services``; this module only maps shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from strongroom import scopes
from strongroom.balances import HISTORY_LIMIT, AccountTotals, AssetValue, Balances, Portfolio, Snapshot, render
from strongroom.enums import AccountStatus
from strongroom.errors import (
    Conflict,
    CredentialsRejected,
    CredentialsUnreadable,
    ExchangeNotSupported,
    ExchangeUnavailable,
    WithdrawalPermission,
)
from strongroom.models import ExchangeAccount
from strongroom.principal import Principal
from strongroom.surfaces.deps import BalancesDep, CurrentPrincipal
from strongroom.surfaces.native.schemas import AccountId, AccountPublic
from strongroom.surfaces.openapi import raises
from strongroom.surfaces.wire import DecimalText

api = APIRouter(tags=["balances"])


# --------------------------------------------------------------------------- wire models


ACCOUNT_ID = Field(description="The exchange account's id.", examples=[3])
FETCHED_AT = "When the snapshot was loaded from the exchange."
AGE = "The snapshot's age in seconds."
TOTAL_USD = "The value of every priced asset in USD (decimal string)."
TOTAL_BTC = "The value of every priced asset in BTC (decimal string)."
UNPRICED = "Assets the venue has no price for: not counted in the totals."


class AssetValueOut(BaseModel):
    asset: str = Field(description="The asset's code on the venue.", examples=["BTC"])
    free: DecimalText = Field(description="Available amount (decimal string).", examples=["0.5"])
    used: DecimalText = Field(description="Amount on hold, e.g. in open orders (decimal string).",
                      examples=["0.1"])
    total: DecimalText = Field(description="free + used (decimal string).", examples=["0.6"])
    usd: DecimalText | None = Field(description="USD value; null when the venue has no price for the asset (never guessed).",
                            examples=["31200"])
    btc: DecimalText | None = Field(description="BTC value; null when unpriced.", examples=["0.6"])
    usd_price: DecimalText | None = Field(description="USD price of one unit (1 for USD, USDT, USDC, BUSD, FDUSD).",
                                  examples=["52000"])


class BalancesOut(BaseModel):
    """An account's last snapshot; every field but ``account_id`` and ``assets`` is null when never loaded."""

    account_id: int = ACCOUNT_ID
    account_type: str | None = Field(None, description="The account type the balances are of.", examples=["spot"])
    fetched_at: datetime | None = Field(None, description=FETCHED_AT)
    age_seconds: float | None = Field(None, description=AGE, examples=[42.5])
    total_usd: DecimalText | None = Field(None, description=TOTAL_USD, examples=["31200"])
    total_btc: DecimalText | None = Field(None, description=TOTAL_BTC, examples=["0.6"])
    unpriced_assets: int | None = Field(None, description=UNPRICED, examples=[0])
    assets: list[AssetValueOut] = Field([], description="Every asset held, with its value.")


class PortfolioAccountOut(BaseModel):
    account_id: int = ACCOUNT_ID
    public_id: uuid.UUID | None = Field(None, description="The account's public UUID.")
    exchange: str = Field(description="The venue's catalogue id.", examples=["binance"])
    name: str = Field(description="The account's name.", examples=["Binance main"])
    account_type: str = Field(description="The account type.", examples=["spot"])
    status: AccountStatus = Field(description="The account's status.")
    fetched_at: datetime | None = Field(None, description=FETCHED_AT)
    age_seconds: float | None = Field(None, description=AGE, examples=[42.5])
    total_usd: DecimalText | None = Field(None, description=TOTAL_USD, examples=["31200"])
    total_btc: DecimalText | None = Field(None, description=TOTAL_BTC, examples=["0.6"])
    unpriced_assets: int | None = Field(None, description=UNPRICED, examples=[0])
    refreshed: bool = Field(False, description="Loaded live by this request (?refresh=true).")
    error: str | None = Field(None, description="Why it was not refreshed (an error code), if it was not.",
                              examples=["exchange_unavailable"])


class PortfolioOut(BaseModel):
    user_id: int = Field(description="The user whose accounts these are.", examples=[1])
    fetched_at: datetime | None = Field(None, description="The oldest snapshot's time.")
    total_usd: DecimalText = Field(description=TOTAL_USD, examples=["31200"])
    total_btc: DecimalText = Field(description=TOTAL_BTC, examples=["0.6"])
    unpriced_assets: int = Field(description=UNPRICED, examples=[0])
    assets: list[AssetValueOut] = Field(description="Every asset summed over the accounts.")
    accounts: list[PortfolioAccountOut] = Field(description="Every live account with its last snapshot's totals.")


class HistoryPointOut(BaseModel):
    at: datetime = Field(description="When the snapshot was loaded.")
    usd: DecimalText = Field(description=TOTAL_USD, examples=["31200"])
    btc: DecimalText = Field(description=TOTAL_BTC, examples=["0.6"])


class HistoryOut(BaseModel):
    account_id: int = ACCOUNT_ID
    points: list[HistoryPointOut] = Field(description="The stored totals, oldest first.")


# a live load of balances: what the exchange and the account's state can answer
LIVE_LOAD = (Conflict, CredentialsRejected, WithdrawalPermission, ExchangeNotSupported, ExchangeUnavailable,
             CredentialsUnreadable)
Refresh = Annotated[bool, Query(description="Load the balances live from the exchange first.")]


# --------------------------------------------------------------------------- mapping


def _text(value: Decimal | None) -> str | None:
    return None if value is None else render(value)


def asset_out(value: AssetValue) -> AssetValueOut:
    return AssetValueOut(asset=value.asset, free=render(value.free), used=render(value.used),
                         total=render(value.total), usd=_text(value.usd), btc=_text(value.btc),
                         usd_price=_text(value.usd_price))


def _age(snapshot: Snapshot, now: datetime) -> float:
    return round(max(snapshot.age_seconds(now), 0.0), 3)


def balances_out(account_id: int, snapshot: Snapshot | None, now: datetime) -> BalancesOut:
    if snapshot is None:
        return BalancesOut(account_id=account_id)
    return BalancesOut(account_id=account_id, account_type=snapshot.account_type or None,
                       fetched_at=snapshot.fetched_at, age_seconds=_age(snapshot, now),
                       total_usd=render(snapshot.total_usd), total_btc=render(snapshot.total_btc),
                       unpriced_assets=snapshot.unpriced_assets, assets=[asset_out(a) for a in snapshot.assets])


def _portfolio_account(totals: AccountTotals, now: datetime) -> PortfolioAccountOut:
    snapshot = totals.snapshot
    out = PortfolioAccountOut(account_id=totals.account_id, public_id=totals.public_id, exchange=totals.exchange,
                              name=totals.name, account_type=totals.account_type, status=AccountStatus(totals.status),
                              refreshed=totals.refreshed, error=totals.error)
    if snapshot is not None:
        out.fetched_at = snapshot.fetched_at
        out.age_seconds = _age(snapshot, now)
        out.total_usd = render(snapshot.total_usd)
        out.total_btc = render(snapshot.total_btc)
        out.unpriced_assets = snapshot.unpriced_assets
    return out


def portfolio_out(portfolio: Portfolio, now: datetime) -> PortfolioOut:
    return PortfolioOut(user_id=portfolio.user_id, fetched_at=portfolio.fetched_at,
                        total_usd=render(portfolio.total_usd), total_btc=render(portfolio.total_btc),
                        unpriced_assets=portfolio.unpriced_assets, assets=[asset_out(a) for a in portfolio.assets],
                        accounts=[_portfolio_account(a, now) for a in portfolio.accounts])


async def accounts_public(balances: Balances, principal: Principal, accounts: Sequence[ExchangeAccount]) -> list[AccountPublic]:
    """Return ``accounts`` as AccountPublic with their last snapshot's totals (one query for all of them).

    Without the ``read`` scope (a delete-only key disconnecting) the balance fields stay null.
    """
    outs = [AccountPublic.model_validate(a) for a in accounts]
    if not outs or not scopes.covers(principal.scopes, scopes.READ):
        return outs
    snapshots = await balances.latest_many(principal, (a.id for a in accounts))
    now = await balances.now()
    for out in outs:
        snapshot = snapshots.get(out.id)
        if snapshot is not None:
            out.balance_usd = render(snapshot.total_usd)
            out.balance_btc = render(snapshot.total_btc)
            out.balance_fetched_at = snapshot.fetched_at
            out.balance_age_seconds = _age(snapshot, now)
    return outs


async def account_public(balances: Balances, principal: Principal, account: ExchangeAccount) -> AccountPublic:
    """One account as AccountPublic with its last snapshot's totals (see ``accounts_public``)."""
    return (await accounts_public(balances, principal, [account]))[0]


# --------------------------------------------------------------------------- routes


@api.get("/exchange-accounts/{account_id}/balances", response_model=BalancesOut,
         summary="Read an account's last balance snapshot.")
@raises(*LIVE_LOAD)
async def get_balances(account_id: AccountId, principal: CurrentPrincipal, balances: BalancesDep,
                       refresh: Refresh = False) -> BalancesOut:
    """The account's last balance snapshot (no exchange call); ``?refresh=true`` loads it live first.

    A live load that fails leaves the last snapshot readable: 503 + Retry-After (exchange down or
    rate limited), 409 ``credentials_rejected`` (the account is now ``invalid``), 400
    ``withdrawal_permission`` (the key can withdraw: the account is now ``suspended``).
    """
    if refresh:
        snapshot: Snapshot | None = await balances.refresh(principal, account_id)
    else:
        snapshot = await balances.latest(principal, account_id)
    return balances_out(account_id, snapshot, await balances.now())


@api.post("/exchange-accounts/{account_id}/balances/refresh", response_model=BalancesOut,
          summary="Load an account's balances from the exchange now.")
@raises(*LIVE_LOAD)
async def refresh_balances(account_id: AccountId, principal: CurrentPrincipal, balances: BalancesDep) -> BalancesOut:
    """Load the balances live from the exchange, value them, store and return the snapshot."""
    snapshot = await balances.refresh(principal, account_id)
    return balances_out(account_id, snapshot, await balances.now())


@api.get("/exchange-accounts/{account_id}/balances/history", response_model=HistoryOut,
         summary="Read an account's stored totals over time.")
async def balance_history(
    account_id: AccountId,
    principal: CurrentPrincipal,
    balances: BalancesDep,
    since: Annotated[datetime | None, Query(alias="from", description="From (ISO 8601; naive means UTC), "
                                                                      "inclusive.")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="To (ISO 8601; naive means UTC), "
                                                                    "inclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_LIMIT, description=f"At most this many points, the newest "
                                                                    f"(1-{HISTORY_LIMIT}).")] = HISTORY_LIMIT,
) -> HistoryOut:
    """The account's stored totals over time, oldest first (``[{at, usd, btc}]``, a balance chart).

    Snapshots older than 7 days are kept one per hour, older than 90 days one per day.
    """
    points = await balances.history(principal, account_id, since, until, limit=limit)
    return HistoryOut(account_id=account_id,
                      points=[HistoryPointOut(at=p.at, usd=render(p.usd), btc=render(p.btc)) for p in points])


@api.get("/portfolio", summary="Sum the balances of every account.", response_model=PortfolioOut)
async def get_portfolio(principal: CurrentPrincipal, balances: BalancesDep, refresh: Refresh = False) -> PortfolioOut:
    """Every live account the caller sees: totals per asset and per account (USD, BTC) with each
    snapshot's age; ``?refresh=true`` loads them all live first (an account that fails keeps its
    last snapshot and says why in ``error``)."""
    if refresh:
        portfolio = await balances.refresh_portfolio(principal)
    else:
        portfolio = await balances.portfolio(principal)
    return portfolio_out(portfolio, await balances.now())
