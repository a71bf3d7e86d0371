"""The OKX family (okx, myokx, okxus): the key check is the account config and its ``perm``."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, ClassVar

from strongroom.exchanges.orders import OrderSpec, OrderState, accepted, order_state
from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.exchanges.venues.base import Venue

log = logging.getLogger("strongroom.exchanges")


class OkxVenue(Venue):
    """``GET /api/v5/account/config`` (signed, needs the passphrase); its ``perm``
    ("read_only,trade,withdraw") tells whether the key can withdraw.

    Balances: spot, margin, swap, future and option all live in OKX's unified trading account
    (ccxt reads it for every type but ``funding``). Markets are the spot ones only.

    Orders: placed through ``/api/v5/trade/order`` (ccxt's default is the batch endpoint). OKX answers a
    placement or a cancel with the order's ids only, so the order is read back (one more request); if
    that read fails, the state is the order as sent (placed: open, nothing filled; canceled: canceled),
    and a later ``fetch_order`` tells the rest. Client order ids are 1 to 32 letters or digits. Closed
    orders are the order history without a state filter (filled and canceled alike).
    """

    ids: ClassVar[tuple[str, ...]] = ("okx", "myokx", "okxus")
    probe_requests: ClassVar[int] = 1
    probe_needs_markets: ClassVar[bool] = False
    trading: ClassVar[bool] = True
    create_requests: ClassVar[int] = 2
    cancel_requests: ClassVar[int] = 2
    client_order_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9]{1,32}")
    client_order_id_rule: ClassVar[str] = "1 to 32 letters or digits"

    def prepare(self, exchange: Any) -> None:
        exchange.options["fetchMarkets"] = {"types": ["spot"]}
        exchange.options["createOrder"] = "privatePostTradeOrder"

    async def _read_back(self, exchange: Any, symbol: str, exchange_order_id: str) -> OrderState | None:
        """Return the order read back after a placement or cancel, or None if that read fails (logged)."""
        try:
            return await self.fetch_order(exchange, symbol, exchange_order_id, None)
        except Exception as exc:  # noqa: BLE001 - the placement or cancel itself succeeded
            log.warning("okx: reading an order back failed (%s)", type(exc).__name__)
            return None

    async def create_order(self, exchange: Any, spec: OrderSpec) -> OrderState:
        placed = await super().create_order(exchange, spec)
        found = await self._read_back(exchange, spec.symbol, placed.exchange_order_id)
        return found or accepted(spec, placed.exchange_order_id)

    async def fetch_closed_orders(self, exchange: Any, symbol: str) -> list[OrderState]:
        """``/api/v5/trade/orders-history`` without a ``state`` (ccxt's ``fetch_closed_orders`` asks filled only)."""
        self.before_order_call(exchange)
        market = exchange.market(symbol)
        response = await exchange.private_get_trade_orders_history({"instType": "SPOT", "instId": market["id"]})
        data = response.get("data") if isinstance(response, dict) else None
        raws = exchange.parse_orders(data if isinstance(data, list) else [], market)
        return [state for state in (order_state(raw) for raw in raws) if state.status != "open"]

    async def canceled(self, exchange: Any, symbol: str, exchange_order_id: str, raw: Any) -> OrderState:
        found = await self._read_back(exchange, symbol, exchange_order_id)
        return found or dataclasses.replace(order_state(raw, symbol=symbol), status="canceled")

    async def probe(self, exchange: Any) -> ValidationOutcome:
        response = await exchange.private_get_account_config()
        data = response.get("data") if isinstance(response, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        perm = first.get("perm")
        can_withdraw = None if not isinstance(perm, str) else "withdraw" in {p.strip() for p in perm.split(",")}
        return ValidationOutcome(verified=True, can_withdraw=can_withdraw)
