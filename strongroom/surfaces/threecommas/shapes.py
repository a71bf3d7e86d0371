"""3Commas' wire shapes, built from the core's objects (no rule here: only names, order and types).

The AccountEntity has every field of seed 001's example, in its order and with its types. What
Strongroom does not do (trading, bots, auto-balance, deposits) is false, null or zero; money is a
decimal string (``format(d, "f")``: no exponent) except where 3Commas itself sends a float
(``total_primary_display_currency_profit.amount``, and the float-formatted ``total_*_profit`` strings).
A secret, or the exchange API key, is never part of any shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from strongroom.balances import AssetValue, HistoryPoint, Profits, Snapshot, shares
from strongroom.enums import AccountStatus
from strongroom.exchanges.markets import Market
from strongroom.models import ExchangeAccount

USD = "USD"
LOCKED = {AccountStatus.DISABLED.value: "disabled", AccountStatus.SUSPENDED.value: "the exchange key can withdraw funds"}


def money(value: Decimal | None) -> str | None:
    """Return a decimal string without exponent (None stays None)."""
    return None if value is None else format(value, "f")


def moment(value: datetime) -> str:
    """Return ``2024-09-17T23:55:19.607Z`` (UTC, milliseconds)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def usd(amount: Any) -> dict[str, Any]:
    return {"currency": USD, "amount": amount}


def _entity(*, id: int | None, name: str, created_at: datetime, updated_at: datetime, status: str,
            account_types: Sequence[str], total_usd: Decimal, total_btc: Decimal, profits: Profits,
            pretty_display_type: str, exchange_name: str, market_code: str) -> dict[str, Any]:
    invalid = status == AccountStatus.INVALID
    return {
        "id": id,
        "auto_balance_period": 0,
        "auto_balance_portfolio_id": None,
        "auto_balance_currency_change_limit": None,
        "autobalance_enabled": False,
        "hedge_mode_available": False,
        "hedge_mode_enabled": False,
        "is_locked": status in LOCKED,
        "smart_trading_supported": False,
        "stats_supported": True,  # balances, their history and profit figures
        "trading_supported": False,
        "market_buy_supported": False,
        "market_sell_supported": False,
        "conditional_buy_supported": False,
        "bots_allowed": False,
        "bots_ttp_allowed": False,
        "bots_tsl_allowed": False,
        "gordon_bots_available": False,
        "multi_bots_allowed": False,
        "created_at": moment(created_at),
        "updated_at": moment(updated_at),
        "last_auto_balance": None,
        "fast_convert_available": False,
        "grid_bots_allowed": False,
        "api_key_invalid": invalid,
        "market_icon": "",
        "deposit_enabled": False,
        "include_in_summary": True,
        "supported_market_types": list(account_types),
        "primary_display_currency_profit_percentage": usd(money(profits.usd.percentage)),
        "primary_display_currency_profit": usd(money(profits.usd.amount)),
        "day_profit_primary_display_currency_percentage": usd(money(profits.day_usd.percentage)),
        "day_profit_primary_display_currency": usd(money(profits.day_usd.amount)),
        "primary_display_currency_amount": usd(money(total_usd)),
        "total_primary_display_currency_profit": usd(float(profits.usd.amount)),
        "available_include_in_summary": True,
        "name": name,
        "auto_balance_method": None,
        "auto_balance_error": None,
        "customer_id": None,
        "subaccount_name": None,
        "lock_reason": LOCKED.get(status),
        "btc_amount": money(total_btc),
        "usd_amount": money(total_usd),
        "day_profit_btc": money(profits.day_btc.amount),
        "day_profit_usd": money(profits.day_usd.amount),
        "day_profit_btc_percentage": money(profits.day_btc.percentage),
        "day_profit_usd_percentage": money(profits.day_usd.percentage),
        "btc_profit": money(profits.btc.amount),
        "usd_profit": money(profits.usd.amount),
        "usd_profit_percentage": money(profits.usd.percentage),
        "btc_profit_percentage": money(profits.btc.percentage),
        "total_btc_profit": str(float(profits.btc.amount)),
        "total_usd_profit": str(float(profits.usd.amount)),
        "pretty_display_type": pretty_display_type,
        "exchange_name": exchange_name,
        "market_code": market_code,
        "api_keys_state": "expired" if invalid else "ok",
    }


def account_entity(account: ExchangeAccount, market: Market, snapshot: Snapshot | None,
                   profits: Profits) -> dict[str, Any]:
    """Return the AccountEntity of ``account`` (balances from ``snapshot``; zero if never loaded)."""
    return _entity(
        id=account.id, name=account.name, created_at=account.created_at, updated_at=account.updated_at,
        status=account.status, account_types=[account.account_type],
        total_usd=snapshot.total_usd if snapshot else Decimal(0),
        total_btc=snapshot.total_btc if snapshot else Decimal(0), profits=profits,
        pretty_display_type=market.pretty_display_type, exchange_name=market.exchange_name(account.account_type),
        market_code=market.code)


def summary_entity(total_usd: Decimal, total_btc: Decimal, profits: Profits, since: datetime,
                   now: datetime) -> dict[str, Any]:
    """Return the AccountEntity of ``/accounts/summary``: every live account summed (id null)."""
    return _entity(id=None, name="Summary", created_at=since, updated_at=now, status=AccountStatus.ACTIVE,
                   account_types=[], total_usd=total_usd, total_btc=total_btc, profits=profits,
                   pretty_display_type="Summary", exchange_name="Summary", market_code="summary")


def _priced(assets: Sequence[AssetValue]) -> list[AssetValue]:
    return [a for a in assets if a.usd is not None]


def pie_chart(assets: Sequence[AssetValue], account_id: int | None) -> list[dict[str, Any]]:
    """Return pie_chart_data: each priced asset with its share of the USD value (percentages sum to 100)."""
    priced = _priced(assets)
    return [{
        "code": a.asset,
        "coinmarketcapid": None,
        "name": a.asset,
        "y": float(share),
        "percentage": float(share),
        "amount": money(a.total),
        "btc_value": money(a.btc),
        "usd_value": money(a.usd),
        "primary_display_currency": usd(money(a.usd)),
        "account_id": account_id,
    } for a, share in zip(priced, shares([a.usd or Decimal(0) for a in priced]), strict=True)]


def table(assets: Sequence[AssetValue], account_id: int) -> list[dict[str, Any]]:
    """Return account_table_data: every asset (unpriced ones with null values and a 0 share)."""
    share_of = dict(zip((a.asset for a in _priced(assets)),
                        shares([a.usd or Decimal(0) for a in _priced(assets)]), strict=True))
    zero = "0"
    rows = []
    for a in assets:
        btc_price = a.btc / a.total if a.btc is not None and a.total else None
        rows.append({
            "currency_code": a.asset,
            "currency_name": a.asset,
            "currency_icon": None,
            "currency_slug": a.asset.lower(),
            "percentage": float(share_of.get(a.asset, Decimal(0))),
            "position": money(a.total),
            "position_available": money(a.free),
            "position_type": 0,
            "borrowed": zero,
            "on_orders": money(a.used),
            "on_orders_with_leverage": zero,
            "on_orders_long": zero,
            "on_orders_short": zero,
            "equity": money(a.total),
            "current_price": money(btc_price),
            "current_price_usd": money(a.usd_price),
            "day_change_percent": None,
            "day_change_percent_btc": None,
            "day_change_percent_usd": None,
            "btc_value": money(a.btc),
            "usd_value": money(a.usd),
            "available_long": zero,
            "available_short": zero,
            "available_with_leverage_long": zero,
            "available_with_leverage_short": zero,
            "account_id": account_id,
            "is_wallet": False,
        })
    return rows


def balance_chart(points: Sequence[HistoryPoint]) -> list[dict[str, Any]]:
    """Return balance_chart_data (deposits are not tracked: 0)."""
    return [{"date": int(p.at.timestamp()), "usd": money(p.usd), "btc": money(p.btc),
             "btc_deposit_amount": "0", "usd_deposit_amount": "0"} for p in points]


def market_item(market: Market) -> dict[str, Any]:
    """Return one market_list entry (form fields from the catalogue)."""
    return {
        "market_name": market.info.name,
        "market_url": "",
        "market_icon": "",
        "help_link": "",
        "market_code": market.code,
        "form_fields": {
            "required": [{"field": f.field, "localized_name": f.localized_name} for f in market.required],
            "optional": [{"field": f.field, "localized_name": f.localized_name} for f in market.optional],
        },
        "connection_type": "fields",
        "available_connection_flows": ["form"],
        "third_party_allowed": False,
        "trusted_ips": [],
        "trusted_ips_input_type": "inline",
        "fast_connect_action_name": None,
    }


NO_ACTIVE_ENTITIES = {"data": {"active_bots_count": 0, "active_deals_count": 0, "active_smart_trades_count": 0,
                               "active_orders_count": 0, "active_grid_bots_count": 0}}
