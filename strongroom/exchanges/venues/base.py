"""The generic venue: how the gateway validates keys, reads balances and prices through any ccxt venue.

Freqtrade style: ``Venue`` does what works for every ccxt venue; a venue with quirks gets a small
subclass in its own module (``binance.py``, ``okx.py``) that overrides only what differs, and is
registered by catalogue id in ``strongroom.exchanges.venues``. Methods receive a configured
``ccxt.async_support`` client (see ``strongroom.exchanges.client``) and let ccxt's errors
propagate: the gateway classifies them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from strongroom import errors
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.exchanges.client import ccxt_module
from strongroom.exchanges.orders import MarketRules, OrderSpec, OrderState, market_rules, order_state
from strongroom.exchanges.outcomes import AssetBalance, ValidationOutcome, to_decimal


class Venue:
    """Generic ccxt venue.

    * ``probe`` (credential check): one ``fetch_balance``, which needs the venue's markets
      (``probe_needs_markets``); the venue does not say whether the key can withdraw.
    * ``balance_params``: ccxt's ``type`` parameter is the account type (spot, margin, swap, ...).
    * ``parse_balance`` / ``ticker_price``: ccxt's unified structures, read as exact decimals.
    """

    ids: ClassVar[tuple[str, ...]] = ()  # catalogue ids served by this class (subclasses)
    trading: ClassVar[bool] = False  # orders go through this venue (a venue whose order calls are tested)
    create_requests: ClassVar[int] = 1  # HTTP requests ``create_order`` makes
    cancel_requests: ClassVar[int] = 1  # HTTP requests ``cancel_order`` makes (when the venue accepts the cancel)
    # the client order ids the venue accepts (ccxt passes them on as they are)
    client_order_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
    client_order_id_rule: ClassVar[str] = "1 to 32 letters, digits or . _ : / -"
    probe_requests: ClassVar[int] = 1  # HTTP requests ``probe`` makes: its cost in the venue's rate limiter
    probe_needs_markets: ClassVar[bool] = True
    market_requests: ClassVar[int] = 1  # HTTP requests a (re)load of the venue's markets makes

    def __init__(self, info: ExchangeInfo) -> None:
        self.info = info

    def prepare(self, exchange: Any) -> None:
        """Adjust a freshly built client of this venue (default: nothing)."""

    async def probe(self, exchange: Any) -> ValidationOutcome:
        """Make the cheapest private call that proves the credentials; return the outcome."""
        await exchange.fetch_balance()
        return ValidationOutcome(verified=True, can_withdraw=None)

    def balance_params(self, account_type: str) -> dict[str, Any]:
        """Return ccxt ``fetch_balance`` params for one of the venue's account types.

        Raises ``errors.ValidationFailed`` for an account type the venue does not have.
        """
        if account_type not in self.info.account_types:
            raise errors.ValidationFailed(
                "unsupported account type", fields={"account_type": f"one of {', '.join(self.info.account_types)}"}
            )
        return {"type": account_type}

    async def read_balance(self, exchange: Any, params: Mapping[str, Any]) -> Any:
        """Return ccxt's unified balance for ``params`` (see ``balance_params``): one ``fetch_balance``."""
        return await exchange.fetch_balance(dict(params))

    def parse_balance(self, balance: Mapping[str, Any]) -> dict[str, AssetBalance]:
        """Return per-asset balances from ccxt's unified balance, sorted by asset, empty assets left out.

        A missing ``total`` is ``free + used``; a missing ``free`` or ``used`` is what the total leaves (or 0).
        """
        result: dict[str, AssetBalance] = {}
        for asset, entry in balance.items():
            if asset in ("info", "free", "used", "total", "debt", "timestamp", "datetime") or not isinstance(
                entry, Mapping
            ):
                continue
            free, used, total = (to_decimal(entry.get(k)) for k in ("free", "used", "total"))
            if total is None:
                total = (free or Decimal(0)) + (used or Decimal(0))
            if free is None:
                free = total - (used or Decimal(0))
            if used is None:
                used = total - free
            if free or used or total:
                result[str(asset)] = AssetBalance(free=free, used=used, total=total)
        return dict(sorted(result.items()))

    def ticker_price(self, ticker: Mapping[str, Any]) -> Decimal | None:
        """Return a ticker's last price (its close if no last), or None if it has neither."""
        last = to_decimal(ticker.get("last"))
        return last if last is not None else to_decimal(ticker.get("close"))

    # --- orders (spot markets; ``symbol`` in ccxt form) -------------------------------------------

    def before_order_call(self, exchange: Any) -> None:
        """Adjust the client before each order call (default: nothing)."""

    def check_client_order_id(self, client_order_id: str) -> None:
        """Raise ``errors.ValidationFailed`` (field ``client_order_id``) for an id the venue would refuse."""
        if not self.client_order_id_pattern.fullmatch(client_order_id):
            raise errors.ValidationFailed("invalid client order id for " + self.info.name,
                                          fields={"client_order_id": self.client_order_id_rule})

    def order_params(self, spec: OrderSpec) -> dict[str, Any]:
        """Return ccxt ``create_order`` params: the client order id, time in force and post-only flag."""
        params: dict[str, Any] = {"clientOrderId": spec.client_order_id}
        if spec.time_in_force is not None:
            params["timeInForce"] = spec.time_in_force
        if spec.post_only:
            params["postOnly"] = True
        return params

    def market_rules(self, exchange: Any, symbol: str) -> MarketRules | None:
        """Return the rules of ``symbol`` from the client's loaded markets, or None if the venue does not list it."""
        market = (exchange.markets or {}).get(symbol)
        if not isinstance(market, Mapping):
            return None
        return market_rules(market, getattr(exchange, "precisionMode", None))

    def check_order(self, exchange: Any, spec: OrderSpec) -> None:
        """Raise ``errors.ValidationFailed`` for an order the market's rules refuse, before anything is sent.

        ccxt would silently truncate an amount or price off the market's steps: such values are refused
        here (naming the step), as are a symbol the venue does not list, an amount below the minimum
        and a limit order below the minimum notional (naming the minimum).
        """
        rules = self.market_rules(exchange, spec.symbol)
        if rules is None:
            raise errors.ValidationFailed(f"{spec.symbol} is not a market of {self.info.name}",
                                          fields={"symbol": "not a market of this exchange"})
        problems: dict[str, str] = {}
        if rules.amount_step and spec.amount % rules.amount_step:
            problems["amount"] = f"must be a multiple of {rules.amount_step.normalize():f}"
        elif rules.min_amount and spec.amount < rules.min_amount:
            problems["amount"] = f"must be at least {rules.min_amount.normalize():f} {rules.base}"
        if spec.price is not None:
            if rules.price_step and spec.price % rules.price_step:
                problems["price"] = f"must be a multiple of {rules.price_step.normalize():f}"
            elif "amount" not in problems and rules.min_cost and spec.amount * spec.price < rules.min_cost:
                problems["amount"] = (f"amount x price must be at least {rules.min_cost.normalize():f} "
                                      f"{rules.quote}")
        if problems:
            raise errors.ValidationFailed("the order does not meet the market's rules", fields=problems)

    async def create_order(self, exchange: Any, spec: OrderSpec) -> OrderState:
        """Place ``spec`` with one ccxt ``create_order``; return the order as the venue answered it.

        Checks the market's rules first (``check_order``): nothing is sent for an order they refuse.
        """
        self.before_order_call(exchange)
        self.check_order(exchange, spec)
        raw = await exchange.create_order(
            spec.symbol, spec.type, spec.side, format(spec.amount, "f"),
            None if spec.price is None else format(spec.price, "f"), self.order_params(spec),
        )
        return self.complete(order_state(raw, symbol=spec.symbol), spec)

    def complete(self, state: OrderState, spec: OrderSpec) -> OrderState:
        """Fill in what the venue's answer to a placement left out from ``spec`` (default: the client order id)."""
        if state.client_order_id is None:
            return dataclasses.replace(state, client_order_id=spec.client_order_id)
        return state

    async def fetch_order(self, exchange: Any, symbol: str, exchange_order_id: str | None,
                          client_order_id: str | None) -> OrderState | None:
        """Return the order by its venue id (else its client order id), or None if the venue does not know it."""
        self.before_order_call(exchange)
        params = {} if exchange_order_id is not None or client_order_id is None else {"clientOrderId": client_order_id}
        try:
            raw = await exchange.fetch_order(exchange_order_id, symbol, params)
        except ccxt_module().OrderNotFound:
            return None
        return order_state(raw, symbol=symbol)

    async def cancel_order(self, exchange: Any, symbol: str, exchange_order_id: str) -> OrderState:
        """Cancel the order; return its state afterwards.

        If the venue refuses the cancel, the order is read back: one no longer open (filled, canceled
        meanwhile) is returned as it is; one the venue does not know raises ccxt's OrderNotFound; one
        still open re-raises the refusal.
        """
        self.before_order_call(exchange)
        ccxt = ccxt_module()
        try:
            raw = await exchange.cancel_order(exchange_order_id, symbol)
        except (ccxt.InvalidOrder, ccxt.OperationRejected):  # OrderNotFound included: it may be closed
            found = await self.fetch_order(exchange, symbol, exchange_order_id, None)
            if found is None:
                raise ccxt.OrderNotFound("unknown order") from None
            if found.status == "open":
                raise
            return found
        return await self.canceled(exchange, symbol, exchange_order_id, raw)

    async def canceled(self, exchange: Any, symbol: str, exchange_order_id: str, raw: Any) -> OrderState:
        """Return the state of a canceled order from the cancel's answer (default: ccxt's parsed order)."""
        return order_state(raw, symbol=symbol)

    async def fetch_open_orders(self, exchange: Any, symbol: str | None) -> list[OrderState]:
        """Return the open orders (of ``symbol``, else of every market)."""
        self.before_order_call(exchange)
        return [order_state(raw) for raw in await exchange.fetch_open_orders(symbol)]

    async def fetch_closed_orders(self, exchange: Any, symbol: str) -> list[OrderState]:
        """Return the recent orders of ``symbol`` that are no longer open (filled, canceled, expired, rejected)."""
        self.before_order_call(exchange)
        return [state for state in (order_state(raw) for raw in await exchange.fetch_closed_orders(symbol))
                if state.status != "open"]


__all__ = ["Venue", "to_decimal"]
