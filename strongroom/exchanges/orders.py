"""Orders through the exchange gateway: what an order asks (``OrderSpec``), what the venue says of it
(``OrderState``), a market's precision and minimums (``MarketRules``), and the order errors.

Plain values, no ccxt types: ``order_state`` reads ccxt's unified order structure (decimal strings,
the client's ``number = str``) into an ``OrderState``; ``market_rules`` reads a ccxt market.

Errors of order calls (``strongroom.exchanges.client.classify_order``), never with a ccxt message:

* ``InsufficientFunds`` (400 ``insufficient_funds``): ccxt's InsufficientFunds.
* ``OrderRejected`` (400 ``order_rejected``): InvalidOrder, OperationRejected, BadRequest, ... (the
  venue answered and refused; nothing was placed).
* ``OrderOutcomeUnknown`` (504 ``order_outcome_unknown``): a placement whose answer was lost (timeout,
  5xx, dropped connection, unreadable body). The venue may hold the order: the caller reconciles it
  by its client order id (``fetch_order``) and never sends it again blindly.
* ``errors.NotFound``: the venue does not know the order (cancel); ``fetch_order`` returns None instead.
* ``errors.ValidationFailed`` (``fields={"symbol": ...}``): a symbol the venue does not list.
* otherwise as every gateway call: ``InvalidCredentials``, ``ExchangeUnavailable``, ``ExchangeNotSupported``,
  and ``NotSupported`` for a venue the gateway cannot trade on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from strongroom.errors import InsufficientFunds, OrderOutcomeUnknown, OrderRejected
from strongroom.exchanges.outcomes import to_decimal

SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
STATUSES = ("open", "closed", "canceled", "rejected", "expired")

# ccxt's precisionMode values (ccxt.base.decimal_to_precision): how a market's ``precision`` is written
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

__all__ = ["InsufficientFunds", "MarketRules", "OrderOutcomeUnknown", "OrderRejected", "OrderSpec", "OrderState",
           "market_rules", "order_state"]


@dataclass(frozen=True)
class OrderSpec:
    """An order to place: ``symbol`` in ccxt form ("BTC/USDT"), ``side`` buy|sell, ``type`` limit|market,
    ``amount`` in the base asset, ``price`` for limit orders only, the caller's ``client_order_id``."""

    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    client_order_id: str
    time_in_force: str | None = None  # "GTC" | "IOC" | "FOK" | None (the venue's default, GTC)
    post_only: bool = False


@dataclass(frozen=True)
class OrderState:
    """An order as the venue reports it. ``status`` is ccxt's: open, closed (filled), canceled, rejected,
    expired. ``fees`` are (currency, cost) pairs where the venue reports them; ``timestamp`` epoch seconds."""

    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str
    filled: Decimal
    average_price: Decimal | None
    fees: tuple[tuple[str, Decimal], ...]
    timestamp: float | None


@dataclass(frozen=True)
class MarketRules:
    """A market's precision and minimums: amounts are multiples of ``amount_step`` and at least ``min_amount``,
    prices multiples of ``price_step``, ``amount x price`` at least ``min_cost`` (quote). None: no such rule."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None
    price_step: Decimal | None
    min_amount: Decimal | None
    min_cost: Decimal | None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _fees(raw: Mapping[str, Any]) -> tuple[tuple[str, Decimal], ...]:
    """Return the order's fees summed per currency (ccxt's ``fees``, else its ``fee``), zero ones left out."""
    entries = raw.get("fees") or ([raw["fee"]] if isinstance(raw.get("fee"), Mapping) else [])
    totals: dict[str, Decimal] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        currency, cost = _text(entry.get("currency")), to_decimal(entry.get("cost"))
        if currency is not None and cost:
            totals[currency] = totals.get(currency, Decimal(0)) + cost
    return tuple(sorted(totals.items()))


def order_state(raw: Mapping[str, Any], *, symbol: str | None = None) -> OrderState:
    """Return the ``OrderState`` of ccxt's unified order ``raw`` (``symbol`` if ccxt could not name it).

    ``price`` is the limit price: None for a market order (ccxt gives some venues' fill price there: that
    is ``average_price``) and for a zero price; the average is None until something filled; a status ccxt
    does not name (``canceling``, none) counts as open. Raises ValueError if ``raw`` has no id.
    """
    order_id = _text(raw.get("id"))
    if order_id is None:
        raise ValueError("the exchange answered with an order without an id")
    price = to_decimal(raw.get("price"))
    filled = to_decimal(raw.get("filled")) or Decimal(0)
    average = to_decimal(raw.get("average")) if filled else None
    status = _text(raw.get("status"))
    timestamp = raw.get("timestamp")
    return OrderState(
        exchange_order_id=order_id,
        client_order_id=_text(raw.get("clientOrderId")),
        symbol=_text(raw.get("symbol")) or symbol or "",
        side=str(raw.get("side") or ""),
        type=str(raw.get("type") or ""),
        amount=to_decimal(raw.get("amount")) or Decimal(0),
        price=None if raw.get("type") == "market" else price or None,
        status=status if status in STATUSES else "open",
        filled=filled,
        average_price=average or None,
        fees=_fees(raw),
        timestamp=timestamp / 1000 if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool)
        else None,
    )


def accepted(spec: OrderSpec, exchange_order_id: str, status: str = "open") -> OrderState:
    """Return the state of an order the venue accepted, known only as sent (the venue's answer had ids only)."""
    return OrderState(exchange_order_id, spec.client_order_id, spec.symbol, spec.side, spec.type, spec.amount,
                      spec.price, status, Decimal(0), None, (), None)


def _step(value: Any, precision_mode: Any) -> Decimal | None:
    """Return a precision as a step: ccxt writes it as the step itself (TICK_SIZE) or as decimal places."""
    number = to_decimal(value)
    if number is None or precision_mode == SIGNIFICANT_DIGITS:
        return None
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(number))
    return number or None


def _limit(market: Mapping[str, Any], what: str) -> Decimal | None:
    limits = market.get("limits")
    entry = limits.get(what) if isinstance(limits, Mapping) else None
    value = to_decimal(entry.get("min")) if isinstance(entry, Mapping) else None
    return value or None


def market_rules(market: Mapping[str, Any], precision_mode: Any) -> MarketRules:
    """Return the ``MarketRules`` of ccxt's unified ``market`` (a zero minimum is no minimum)."""
    precision = market.get("precision")
    precision = precision if isinstance(precision, Mapping) else {}
    return MarketRules(
        symbol=str(market.get("symbol")),
        base=str(market.get("base")),
        quote=str(market.get("quote")),
        amount_step=_step(precision.get("amount"), precision_mode),
        price_step=_step(precision.get("price"), precision_mode),
        min_amount=_limit(market, "amount"),
        min_cost=_limit(market, "cost"),
    )
