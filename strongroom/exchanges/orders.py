"""Orders at a venue: what the gateway takes and returns (issue 19).

PROVISIONAL copy of the interface agreed in the brief (branch h5 owns this module and replaces it on merge).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from strongroom import errors


@dataclass(frozen=True)
class OrderSpec:
    symbol: str  # ccxt form "BTC/USDT"
    side: str  # "buy" | "sell"
    type: str  # "limit" | "market"
    amount: Decimal
    price: Decimal | None  # limit only
    client_order_id: str
    time_in_force: str | None = None  # "GTC" | "IOC" | "FOK" | None
    post_only: bool = False


@dataclass(frozen=True)
class OrderState:
    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str  # "open" | "closed" | "canceled" | "rejected" | "expired" (ccxt's vocabulary)
    filled: Decimal
    average_price: Decimal | None
    fees: tuple[tuple[str, Decimal], ...]  # (currency, cost)
    timestamp: float | None  # epoch seconds


@dataclass(frozen=True)
class MarketRules:
    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None
    price_step: Decimal | None
    min_amount: Decimal | None
    min_cost: Decimal | None  # min notional in quote


class OrderOutcomeUnknown(errors.DomainError):
    """The venue may or may not have the order (a timeout, a lost answer): reconcile by client order id."""

    code = "order_outcome_unknown"
    status = 503


class InsufficientFunds(errors.DomainError):
    """The account's balance does not cover the order."""

    code = "insufficient_funds"
    status = 400


class OrderRejected(errors.DomainError):
    """The venue rejected the order."""

    code = "order_rejected"
    status = 400
