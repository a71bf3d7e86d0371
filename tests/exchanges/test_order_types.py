"""Reading ccxt's unified orders and markets into OrderState and MarketRules: exact decimals, ccxt's
precision modes, fees summed per currency, and what counts as no value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from strongroom.exchanges.orders import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    MarketRules,
    OrderState,
    market_rules,
    order_state,
)

D = Decimal


def test_an_order_reads_exactly_with_fees_summed_per_currency() -> None:
    raw = {"id": 42, "clientOrderId": "c1", "symbol": "ETH/BTC", "side": "sell", "type": "limit",
           "amount": "1.50000000", "price": "0.06000000", "status": "closed", "filled": "1.5", "average": "0.061",
           "timestamp": 1700000000123, "fee": {"currency": "BTC", "cost": "0.0001"},
           "fees": [{"currency": "BTC", "cost": "0.00006"}, {"currency": "BTC", "cost": "0.00003"},
                    {"currency": "BNB", "cost": "0"}, {"currency": None, "cost": "1"}]}
    assert order_state(raw) == OrderState("42", "c1", "ETH/BTC", "sell", "limit", D("1.5"), D("0.06"), "closed",
                                           D("1.5"), D("0.061"), (("BTC", D("0.00009")),), 1700000000.123)


def test_what_counts_as_no_value() -> None:
    raw = {"id": "7", "clientOrderId": "", "type": "market", "side": "buy", "amount": None, "price": "48000",
           "status": "canceling", "filled": None, "average": "48000", "timestamp": None,
           "fee": {"currency": "USDT", "cost": "0.1"}}
    state = order_state(raw, symbol="BTC/USDT")
    assert (state.client_order_id, state.symbol, state.amount, state.price, state.status, state.filled) == (
        None, "BTC/USDT", D(0), None, "open", D(0))
    assert state.average_price is None  # nothing filled: no average, whatever ccxt computed
    assert state.fees == (("USDT", D("0.1")),) and state.timestamp is None
    assert order_state({"id": "8", "type": "limit", "price": "0"}).price is None
    with pytest.raises(ValueError, match="without an id"):
        order_state({"id": "", "status": "open"})


@pytest.mark.parametrize(("mode", "precision", "amount_step", "price_step"), [
    (TICK_SIZE, {"amount": "0.00001000", "price": "0.01"}, D("0.00001"), D("0.01")),
    (DECIMAL_PLACES, {"amount": 5, "price": "2"}, D("0.00001"), D("0.01")),
    (SIGNIFICANT_DIGITS, {"amount": 5, "price": 2}, None, None),
    (TICK_SIZE, {"amount": None, "price": "0"}, None, None),
], ids=["tick-size", "decimal-places", "significant-digits", "none"])
def test_market_rules_in_every_precision_mode(mode: int, precision: dict[str, object], amount_step: Decimal | None,
                                              price_step: Decimal | None) -> None:
    market = {"symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "precision": precision,
              "limits": {"amount": {"min": "0.00001"}, "cost": {"min": "0"}, "price": {"min": None}}}
    assert market_rules(market, mode) == MarketRules("BTC/USDT", "BTC", "USDT", amount_step, price_step,
                                                     D("0.00001"), None)
