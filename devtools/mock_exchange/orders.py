"""The mock's matching engine, venue-neutral: orders, their fills against the mock price, balances, faults.

Each venue module (``binance``, ``okx``) parses its own request shape into :func:`place` / :func:`cancel`
calls and renders :class:`MockOrder` in its own answer shape; the rules live here once:

* **Market rules** (:func:`rules_for`): price tick, amount step, minimum amount and minimum notional per
  symbol, listed in the venues' markets and enforced on placement (:class:`Refused` ``lot_size``,
  ``min_qty``, ``price_filter``, ``notional``).
* **Market orders** fill at once, in full, at the symbol's mock price (``no_price`` if it has none).
* **Limit orders** that cross the mock price fill at once at the mock price (better than or equal to the
  limit); the others rest, their funds locked (buy: ``amount x price`` of the quote; sell: the amount of
  the base), until ``POST /_mock/prices`` moves the price across them (:func:`cross`): they fill at their
  limit price. ``post_only`` orders that would cross are refused (``would_take``); IOC/FOK orders that
  cannot fill at once expire. Fills are all or nothing (no partial fills).
* **Balances** move with fills (the spot wallet on Binance, the trading account on OKX): the buyer pays
  the quote, the seller the base, and a fee of :data:`FEE_RATE` is taken from what each receives
  (reported by the venue: Binance ``fills[].commission``, OKX ``fee`` / ``feeCcy``).
* **Client order ids** are unique per key among the key's orders: a duplicate is refused
  (``duplicate_client_order_id``) as the venues do.
* **Faults** (``POST /_mock/faults``): ``insufficient_balance`` refuses the next placements with the
  venue's insufficient-funds error whatever the balance; ``lost_answer`` creates the order, then
  loses the answer (a bare 5xx, or a wait past the client's timeout); ``read_unavailable`` answers
  the next reads of one order (``GET`` order) a bare 5xx: see :class:`Fault`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devtools.mock_exchange.state import MockAccount, MockState

FEE_RATE = Decimal("0.001")  # 0.1 %, taken from what the order receives (base on a buy, quote on a sell)
WALLET = {"binance": "spot", "okx": "trading"}  # the wallet spot orders trade from
SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
FAULTS = ("lost_answer", "insufficient_balance", "read_unavailable")
NOTIONAL_VENUES = ("binance",)  # venues with a minimum notional (OKX has only a minimum size)

_ids = itertools.count(1_000_001)


@dataclass(frozen=True)
class Rules:
    """A market's filters: price tick, amount step, minimum amount (base) and minimum notional (quote)."""

    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal


# Per quote asset; BTC as base trades in smaller steps. (Binance's real BTC/USDT: tick 0.01, step 0.00001,
# min notional 5.)
_QUOTE_RULES: dict[str, Rules] = {
    "USDT": Rules(Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal(5)),
    "USDC": Rules(Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal(5)),
    "BTC": Rules(Decimal("0.00001"), Decimal("0.001"), Decimal("0.001"), Decimal("0.0001")),
}
_DEFAULT_RULES = Rules(Decimal("0.00000001"), Decimal("0.00000001"), Decimal("0.00000001"), Decimal(0))


def rules_for(symbol: str) -> Rules:
    """Return the filters of ``symbol`` (``BASE/QUOTE``): by its quote asset, finer steps for BTC as base."""
    base, quote = symbol.split("/", 1)
    rules = _QUOTE_RULES.get(quote, _DEFAULT_RULES)
    if base == "BTC" and quote != "BTC":
        rules = Rules(rules.tick, Decimal("0.00001"), Decimal("0.00001"), rules.min_notional)
    return rules


@dataclass
class MockOrder:
    """One order of one key. ``status``: open, filled, canceled, expired. Amounts are exact decimals."""

    exchange: str
    api_key: str
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    time_in_force: str = "GTC"
    post_only: bool = False
    status: str = "open"
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # quote filled
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    fill_price: Decimal | None = None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    updated_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    fill_ms: int | None = None

    @property
    def base(self) -> str:
        """Return the base asset (``BTC`` of ``BTC/USDT``)."""
        return self.symbol.split("/", 1)[0]

    @property
    def quote(self) -> str:
        """Return the quote asset (``USDT`` of ``BTC/USDT``)."""
        return self.symbol.split("/", 1)[1]

    @property
    def average(self) -> Decimal | None:
        """Return the average fill price, or None before a fill."""
        return self.cost / self.filled if self.filled else None

    def document(self) -> dict[str, object]:
        """Return the control API's form (``GET /_mock/orders``): decimals as strings."""
        return {
            "exchange": self.exchange, "api_key": self.api_key, "order_id": str(self.order_id),
            "client_order_id": self.client_order_id, "symbol": self.symbol, "side": self.side, "type": self.type,
            "time_in_force": self.time_in_force, "post_only": self.post_only, "amount": str(self.amount),
            "price": None if self.price is None else str(self.price), "status": self.status,
            "filled": str(self.filled), "cost": str(self.cost), "fee": str(self.fee), "fee_asset": self.fee_asset,
        }


@dataclass
class Fault:
    """A fault armed through ``POST /_mock/faults`` for the next ``remaining`` placements (None: until cleared).

    ``lost_answer``: the order is created, then its answer is lost: ``status`` (a bare 5xx; ccxt raises a
    network error) or, with ``delay_seconds``, the answer is held that long (past the client's timeout).
    ``insufficient_balance``: the placement is refused with the venue's insufficient-funds error.
    ``read_unavailable``: a read of one order (``GET`` order, not a placement) answers a bare ``status``.
    """

    exchange: str
    kind: str
    api_key: str | None = None
    remaining: int | None = 1
    status: int = 503
    delay_seconds: float | None = None

    def document(self) -> dict[str, object]:
        """Return the control API's form."""
        return {"exchange": self.exchange, "fault": self.kind, "api_key": self.api_key, "remaining": self.remaining,
                "status": self.status, "delay_seconds": self.delay_seconds}


class Refused(Exception):
    """A placement or cancel the venue refuses. ``reason`` is venue-neutral; each venue maps it to its error."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def take_fault(state: MockState, exchange: str, api_key: str, kind: str) -> Fault | None:
    """Return (and spend one use of) the first armed fault of ``kind`` for this venue and key, or None."""
    for fault in list(state.faults):
        if fault.exchange != exchange or fault.kind != kind or fault.api_key not in (None, api_key):
            continue
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                state.faults.remove(fault)
        return fault
    return None


def _on_step(value: Decimal, step: Decimal) -> bool:
    return step == 0 or value % step == 0


def _check_rules(exchange: str, symbol: str, amount: Decimal, price: Decimal | None) -> None:
    rules = rules_for(symbol)
    if amount <= 0 or not _on_step(amount, rules.step):
        raise Refused("lot_size", f"amount must be a multiple of {rules.step}")
    if amount < rules.min_qty:
        raise Refused("min_qty", f"amount must be at least {rules.min_qty}")
    if price is not None:
        if price <= 0 or not _on_step(price, rules.tick):
            raise Refused("price_filter", f"price must be a multiple of {rules.tick}")
        if exchange in NOTIONAL_VENUES and amount * price < rules.min_notional:
            raise Refused("notional", f"amount x price must be at least {rules.min_notional}")


def _wallet(account: MockAccount, exchange: str) -> dict[str, tuple[Decimal, Decimal]]:
    return account.balances.setdefault(WALLET[exchange], {})


def _move(wallet: dict[str, tuple[Decimal, Decimal]], asset: str, free: Decimal = Decimal(0),
          used: Decimal = Decimal(0)) -> None:
    old_free, old_used = wallet.get(asset, (Decimal(0), Decimal(0)))
    wallet[asset] = (old_free + free, old_used + used)


def _fill(order: MockOrder, account: MockAccount, price: Decimal, locked: bool) -> None:
    """Fill ``order`` in full at ``price``; ``locked``: its funds were locked when it rested."""
    wallet = _wallet(account, order.exchange)
    cost = order.amount * price
    if order.side == "buy":
        if locked:
            assert order.price is not None
            _move(wallet, order.quote, used=-(order.amount * order.price))
        else:
            _move(wallet, order.quote, free=-cost)
        order.fee, order.fee_asset = order.amount * FEE_RATE, order.base
        _move(wallet, order.base, free=order.amount - order.fee)
    else:
        _move(wallet, order.base, **({"used": -order.amount} if locked else {"free": -order.amount}))
        order.fee, order.fee_asset = cost * FEE_RATE, order.quote
        _move(wallet, order.quote, free=cost - order.fee)
    now = int(time.time() * 1000)
    order.status, order.filled, order.cost, order.fill_price = "filled", order.amount, cost, price
    order.updated_ms = order.fill_ms = now


def _crosses(side: str, limit: Decimal, market: Decimal) -> bool:
    return market <= limit if side == "buy" else market >= limit


def place(state: MockState, exchange: str, account: MockAccount, *, symbol: str, side: str, type: str,
          amount: Decimal, price: Decimal | None, client_order_id: str, time_in_force: str = "GTC",
          post_only: bool = False) -> MockOrder:
    """Place an order for ``account``; return it (open, filled or expired) and count it in the stats.

    Raises :class:`Refused` (``unknown_symbol``, ``duplicate_client_order_id``, the market rules,
    ``no_price``, ``would_take``, ``insufficient_balance``); a refused order is not created.
    """
    if symbol not in {f"{b}/{q}" for b, q in state.markets(exchange)}:
        raise Refused("unknown_symbol", symbol)
    book = state.orders.setdefault(exchange, {})
    if any(o.api_key == account.api_key and o.client_order_id == client_order_id for o in book.values()):
        raise Refused("duplicate_client_order_id", client_order_id)
    market = state.prices.get(exchange, {}).get(symbol)
    if type == "market" and market is None:
        raise Refused("no_price", symbol)
    _check_rules(exchange, symbol, amount, price if type == "limit" else market)
    marketable = type == "market" or (market is not None and price is not None and _crosses(side, price, market))
    if post_only and marketable:
        raise Refused("would_take", "the order would immediately match and take")
    if take_fault(state, exchange, account.api_key, "insufficient_balance") is not None:
        raise Refused("insufficient_balance")
    order = MockOrder(exchange, account.api_key, next(_ids), client_order_id, symbol, side, type, amount,
                      price if type == "limit" else None, time_in_force if type == "limit" else "GTC", post_only)
    wallet = _wallet(account, exchange)
    base, quote = symbol.split("/", 1)
    if side == "buy":
        need, asset = amount * (market if marketable else price), quote  # type: ignore[operator]
    else:
        need, asset = amount, base
    if wallet.get(asset, (Decimal(0), Decimal(0)))[0] < need:
        raise Refused("insufficient_balance")
    if marketable:
        assert market is not None
        _fill(order, account, market, locked=False)
    elif time_in_force in ("IOC", "FOK"):
        order.status = "expired"
    else:
        _move(wallet, asset, free=-need, used=need)  # locked while it rests
    book[order.order_id] = order
    stats = state.venue_stats(exchange)
    stats.orders_created += 1
    stats.orders_by_key[account.api_key] = stats.orders_by_key.get(account.api_key, 0) + 1
    return order


def find(state: MockState, exchange: str, account: MockAccount, *, order_id: int | None = None,
         client_order_id: str | None = None, symbol: str | None = None) -> MockOrder | None:
    """Return the key's order with this id (or client order id), on ``symbol`` if given; None if unknown."""
    for order in state.orders.get(exchange, {}).values():
        if order.api_key != account.api_key or (symbol is not None and order.symbol != symbol):
            continue
        if (order_id is not None and order.order_id == order_id) or (
                order_id is None and client_order_id is not None and order.client_order_id == client_order_id):
            return order
    return None


def orders_of(state: MockState, exchange: str, account: MockAccount, symbol: str | None = None,
              open_only: bool = False) -> list[MockOrder]:
    """Return the key's orders (on ``symbol``; only open ones), oldest first."""
    return [o for o in state.orders.get(exchange, {}).values()
            if o.api_key == account.api_key and (symbol is None or o.symbol == symbol)
            and (not open_only or o.status == "open")]


def cancel(state: MockState, exchange: str, account: MockAccount, order: MockOrder) -> MockOrder:
    """Cancel an open order, unlocking its funds; return it. Raises :class:`Refused` ``not_open`` otherwise."""
    if order.status != "open":
        raise Refused("not_open", order.status)
    wallet = _wallet(account, exchange)
    if order.side == "buy":
        assert order.price is not None
        locked, asset = order.amount * order.price, order.quote
    else:
        locked, asset = order.amount, order.base
    _move(wallet, asset, free=locked, used=-locked)
    order.status, order.updated_ms = "canceled", int(time.time() * 1000)
    return order


def cross(state: MockState, exchange: str) -> int:
    """Fill every resting limit order of ``exchange`` the current prices cross; return how many filled."""
    filled = 0
    prices = state.prices.get(exchange, {})
    for order in state.orders.get(exchange, {}).values():
        market = prices.get(order.symbol)
        if order.status != "open" or market is None or order.price is None:
            continue
        if _crosses(order.side, order.price, market):
            account = state.accounts.get(exchange, {}).get(order.api_key)
            if account is None:  # its key was revoked: the order stays as it was
                continue
            _fill(order, account, order.price, locked=True)
            filled += 1
    return filled
