"""3Commas' shapes as models, for the OpenAPI document only: the answers are built by ``shapes.py``
(plain dicts, in 3Commas' order) and parameters are read by ``params.py``; these describe them. A test
checks real answers against the document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from strongroom.surfaces.wire import DecimalText

ALWAYS_FALSE = "Always false: Strongroom does not trade, run bots or move funds."
ALWAYS_NULL = "Always null (not supported)."
MONEY = "A decimal string (no exponent)."
MONEY_OR_NULL = "A decimal string (no exponent); null when unknown."


class Amount(BaseModel):
    currency: Literal["USD"] = Field(description="Always USD.")
    amount: DecimalText | None = Field(description=MONEY_OR_NULL, examples=["31200"])


class FloatAmount(BaseModel):
    currency: Literal["USD"] = Field(description="Always USD.")
    amount: float = Field(description="A number, as 3Commas sends this one.", examples=[125.5])


def _false() -> Any:
    return Field(description=ALWAYS_FALSE)


class AccountEntity(BaseModel):
    """An exchange account as 3Commas shows it (3Commas' AccountEntity, every field in its order)."""

    id: int | None = Field(description="The account's id; null for the summary.", examples=[3])
    auto_balance_period: int = Field(description="Always 0 (no auto-balance).", examples=[0])
    auto_balance_portfolio_id: None = Field(description=ALWAYS_NULL)
    auto_balance_currency_change_limit: None = Field(description=ALWAYS_NULL)
    autobalance_enabled: bool = _false()
    hedge_mode_available: bool = _false()
    hedge_mode_enabled: bool = _false()
    is_locked: bool = Field(description="True when the account is disabled or its key can withdraw (lock_reason).")
    smart_trading_supported: bool = _false()
    stats_supported: bool = Field(description="Always true: balances, their history and profits.")
    trading_supported: bool = _false()
    market_buy_supported: bool = _false()
    market_sell_supported: bool = _false()
    conditional_buy_supported: bool = _false()
    bots_allowed: bool = _false()
    bots_ttp_allowed: bool = _false()
    bots_tsl_allowed: bool = _false()
    gordon_bots_available: bool = _false()
    multi_bots_allowed: bool = _false()
    created_at: str = Field(description="When it was connected (ISO 8601, UTC, milliseconds).",
                            examples=["2024-09-17T23:55:19.607Z"])
    updated_at: str = Field(description="When it last changed (ISO 8601, UTC, milliseconds).",
                            examples=["2024-09-17T23:55:19.607Z"])
    last_auto_balance: None = Field(description=ALWAYS_NULL)
    fast_convert_available: bool = _false()
    grid_bots_allowed: bool = _false()
    api_key_invalid: bool = Field(description="True when the exchange refused the stored key (rotate it).")
    market_icon: str = Field(description="Always empty.")
    deposit_enabled: bool = _false()
    include_in_summary: bool = Field(description="Always true.")
    supported_market_types: list[str] = Field(description="The account's type (spot, margin, swap, future, option).",
                                              examples=[["spot"]])
    primary_display_currency_profit_percentage: Amount = Field(description="Profit over the stored history, %.")
    primary_display_currency_profit: Amount = Field(description="Profit over the stored history, USD.")
    day_profit_primary_display_currency_percentage: Amount = Field(description="Profit over the last day, %.")
    day_profit_primary_display_currency: Amount = Field(description="Profit over the last day, USD.")
    primary_display_currency_amount: Amount = Field(description="The account's value, USD.")
    total_primary_display_currency_profit: FloatAmount = Field(description="Profit over the stored history, USD.")
    available_include_in_summary: bool = Field(description="Always true.")
    name: str = Field(description="The account's name.", examples=["Binance main"])
    auto_balance_method: None = Field(description=ALWAYS_NULL)
    auto_balance_error: None = Field(description=ALWAYS_NULL)
    customer_id: None = Field(description=ALWAYS_NULL)
    subaccount_name: None = Field(description=ALWAYS_NULL)
    lock_reason: str | None = Field(description="Why it is locked (disabled, the key can withdraw); null if not.",
                                    examples=["disabled"])
    btc_amount: DecimalText | None = Field(description="The account's value in BTC. " + MONEY_OR_NULL)
    usd_amount: DecimalText | None = Field(description="The account's value in USD. " + MONEY_OR_NULL)
    day_profit_btc: DecimalText | None = Field(description="Profit over the last day, BTC. " + MONEY_OR_NULL)
    day_profit_usd: DecimalText | None = Field(description="Profit over the last day, USD. " + MONEY_OR_NULL)
    day_profit_btc_percentage: DecimalText | None = Field(description="Profit over the last day in BTC, %.")
    day_profit_usd_percentage: DecimalText | None = Field(description="Profit over the last day in USD, %.")
    btc_profit: DecimalText | None = Field(description="Profit over the stored history, BTC. " + MONEY_OR_NULL)
    usd_profit: DecimalText | None = Field(description="Profit over the stored history, USD. " + MONEY_OR_NULL)
    usd_profit_percentage: DecimalText | None = Field(description="Profit over the stored history in USD, %.")
    btc_profit_percentage: DecimalText | None = Field(description="Profit over the stored history in BTC, %.")
    total_btc_profit: str = Field(description="Profit over the stored history in BTC, float-formatted.",
                                  examples=["0.0125"])
    total_usd_profit: str = Field(description="Profit over the stored history in USD, float-formatted.",
                                  examples=["125.5"])
    pretty_display_type: str = Field(description="The market code in display spelling.", examples=["Binance"])
    exchange_name: str = Field(description="The venue's name and the account type.", examples=["Binance Spot"])
    market_code: str = Field(description="3Commas' market code of the venue (summary: summary).",
                             examples=["binance"])
    api_keys_state: Literal["ok", "expired"] = Field(description="expired when the exchange refused the stored key.")


class Pong(BaseModel):
    pong: Literal["pong"] = Field(description="Always pong.")


class ServerTime(BaseModel):
    server_time: int = Field(description="The server's time in seconds since the epoch.", examples=[1726617319])


class Valid(BaseModel):
    valid: Literal[True] = Field(description="Always true: the request's signature verified.")


class FormFieldOut(BaseModel):
    field: str = Field(description="The parameter's name in /accounts/new.", examples=["api_key"])
    localized_name: str = Field(description="Its label.", examples=["API Key:"])


class FormFields(BaseModel):
    required: list[FormFieldOut] = Field(description="Parameters connecting needs.")
    optional: list[FormFieldOut] = Field(description="Parameters connecting may add.")


class MarketItem(BaseModel):
    market_name: str = Field(description="The venue's name.", examples=["Binance"])
    market_url: str = Field(description="Always empty.")
    market_icon: str = Field(description="Always empty.")
    help_link: str = Field(description="Always empty.")
    market_code: str = Field(description="The market code (type in /accounts/new).", examples=["binance"])
    form_fields: FormFields = Field(description="The connection form.")
    connection_type: Literal["fields"] = Field(description="Always fields.")
    available_connection_flows: list[Literal["form"]] = Field(description="Always [form].")
    third_party_allowed: bool = _false()
    trusted_ips: list[str] = Field(description="Always empty.")
    trusted_ips_input_type: Literal["inline"] = Field(description="Always inline.")
    fast_connect_action_name: None = Field(description=ALWAYS_NULL)


class CurrencyRate(BaseModel):
    last: DecimalText = Field(description="The pair's last price. " + MONEY, examples=["52000.1"])
    orderbook_last: DecimalText = Field(description="The same last price. " + MONEY, examples=["52000.1"])
    orderbook_price_currency: str = Field(description="The quote currency.", examples=["USDT"])
    instrumentKind: Literal["spot"] = Field(description="Always spot.")


class TypeToConnect(BaseModel):
    type: str = Field(description="The market code.", examples=["binance"])
    connected: bool = Field(description="Whether the given api_key is connected already by the caller.")
    available: bool = Field(description="Always true.")
    unified: bool = _false()


class PieSlice(BaseModel):
    code: str = Field(description="The asset.", examples=["BTC"])
    coinmarketcapid: None = Field(description=ALWAYS_NULL)
    name: str = Field(description="The asset.", examples=["BTC"])
    y: float = Field(description="Its share of the USD value, %.", examples=[62.5])
    percentage: float = Field(description="Its share of the USD value, %.", examples=[62.5])
    amount: DecimalText | None = Field(description="The amount held. " + MONEY_OR_NULL, examples=["0.6"])
    btc_value: DecimalText | None = Field(description="Its BTC value. " + MONEY_OR_NULL, examples=["0.6"])
    usd_value: DecimalText | None = Field(description="Its USD value. " + MONEY_OR_NULL, examples=["31200"])
    primary_display_currency: Amount = Field(description="Its USD value.")
    account_id: int | None = Field(description="The account (null for the summary).", examples=[3])


class TableRow(BaseModel):
    currency_code: str = Field(description="The asset.", examples=["BTC"])
    currency_name: str = Field(description="The asset.", examples=["BTC"])
    currency_icon: None = Field(description=ALWAYS_NULL)
    currency_slug: str = Field(description="The asset in lower case.", examples=["btc"])
    percentage: float = Field(description="Its share of the USD value, % (0 when unpriced).", examples=[62.5])
    position: DecimalText | None = Field(description="The amount held. " + MONEY_OR_NULL, examples=["0.6"])
    position_available: DecimalText | None = Field(description="The amount available. " + MONEY_OR_NULL)
    position_type: int = Field(description="Always 0.", examples=[0])
    borrowed: DecimalText = Field(description="Always 0.", examples=["0"])
    on_orders: DecimalText | None = Field(description="The amount on hold. " + MONEY_OR_NULL)
    on_orders_with_leverage: DecimalText = Field(description="Always 0.", examples=["0"])
    on_orders_long: DecimalText = Field(description="Always 0.", examples=["0"])
    on_orders_short: DecimalText = Field(description="Always 0.", examples=["0"])
    equity: DecimalText | None = Field(description="The amount held. " + MONEY_OR_NULL)
    current_price: DecimalText | None = Field(description="The price in BTC. " + MONEY_OR_NULL)
    current_price_usd: DecimalText | None = Field(description="The price in USD. " + MONEY_OR_NULL)
    day_change_percent: None = Field(description=ALWAYS_NULL)
    day_change_percent_btc: None = Field(description=ALWAYS_NULL)
    day_change_percent_usd: None = Field(description=ALWAYS_NULL)
    btc_value: DecimalText | None = Field(description="Its BTC value. " + MONEY_OR_NULL)
    usd_value: DecimalText | None = Field(description="Its USD value. " + MONEY_OR_NULL)
    available_long: DecimalText = Field(description="Always 0.", examples=["0"])
    available_short: DecimalText = Field(description="Always 0.", examples=["0"])
    available_with_leverage_long: DecimalText = Field(description="Always 0.", examples=["0"])
    available_with_leverage_short: DecimalText = Field(description="Always 0.", examples=["0"])
    account_id: int = Field(description="The account.", examples=[3])
    is_wallet: bool = _false()


class ChartPoint(BaseModel):
    date: int = Field(description="When the snapshot was loaded (seconds since the epoch).", examples=[1726617319])
    usd: DecimalText | None = Field(description="The account's value in USD. " + MONEY_OR_NULL, examples=["31200"])
    btc: DecimalText | None = Field(description="The account's value in BTC. " + MONEY_OR_NULL, examples=["0.6"])
    btc_deposit_amount: Literal["0"] = Field(description="Always 0 (deposits are not tracked).")
    usd_deposit_amount: Literal["0"] = Field(description="Always 0 (deposits are not tracked).")


class ActiveCounts(BaseModel):
    active_bots_count: Literal[0] = Field(description="Always 0.")
    active_deals_count: Literal[0] = Field(description="Always 0.")
    active_smart_trades_count: Literal[0] = Field(description="Always 0.")
    active_orders_count: Literal[0] = Field(description="Always 0.")
    active_grid_bots_count: Literal[0] = Field(description="Always 0.")


class ActiveEntities(BaseModel):
    data: ActiveCounts = Field(description="Strongroom runs no bots, deals, SmartTrades or orders.")
