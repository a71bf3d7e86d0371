"""Binance: the key check is the account endpoint plus the key's API restrictions (withdrawals)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from strongroom.exchanges.orders import OrderState, order_state
from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.exchanges.venues.base import Venue


class BinanceVenue(Venue):
    """``GET /api/v3/account`` (no market load) + ``GET /sapi/v1/account/apiRestrictions``.

    ``enableWithdrawals`` of the key is preferred to the account's ``canWithdraw``. Markets are
    the spot ones only (prices for valuation are spot prices; futures markets cost two more requests).

    Orders: every order call judges the key afresh (see ``judge_key_afresh``); open orders of every
    market in one request (ccxt refuses that unless told); a cancel's answer names the order's client
    id ``origClientOrderId`` (its ``clientOrderId`` is the cancel request's own); closed orders are
    ``allOrders`` without the open ones (ccxt's ``fetch_closed_orders`` keeps only filled ones).
    """

    ids: ClassVar[tuple[str, ...]] = ("binance",)
    probe_requests: ClassVar[int] = 2
    probe_needs_markets: ClassVar[bool] = False
    trading: ClassVar[bool] = True
    client_order_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
    client_order_id_rule: ClassVar[str] = "1 to 36 letters, digits or . : / _ -"

    def prepare(self, exchange: Any) -> None:
        exchange.options["fetchMarkets"] = {"types": ["spot"]}
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False

    def before_order_call(self, exchange: Any) -> None:
        self.judge_key_afresh(exchange)

    async def canceled(self, exchange: Any, symbol: str, exchange_order_id: str, raw: Any) -> OrderState:
        state = order_state(raw, symbol=symbol)
        info = raw.get("info") if isinstance(raw, Mapping) else None
        original = info.get("origClientOrderId") if isinstance(info, Mapping) else None
        return dataclasses.replace(state, client_order_id=str(original)) if original else state

    async def fetch_closed_orders(self, exchange: Any, symbol: str) -> list[OrderState]:
        self.before_order_call(exchange)
        return [state for state in (order_state(raw) for raw in await exchange.fetch_orders(symbol))
                if state.status != "open"]

    @staticmethod
    def judge_key_afresh(exchange: Any) -> None:
        """Make ccxt read Binance's -2015 ("invalid key, IP or permissions") as a rejected key again.

        Once a client has authenticated, ccxt reads -2015 as a temporary ban (rate limiting); a key
        check and a balance read must judge the key as it is now, on a pooled client too.
        """
        exchange.options["hasAlreadyAuthenticatedSuccessfully"] = False

    async def read_balance(self, exchange: Any, params: Mapping[str, Any]) -> Any:
        self.judge_key_afresh(exchange)  # a key revoked since the client's last call is rejected, not "busy"
        return await exchange.fetch_balance(dict(params))

    async def probe(self, exchange: Any) -> ValidationOutcome:
        self.judge_key_afresh(exchange)
        account = await exchange.private_get_account()
        restrictions = await exchange.sapi_get_account_apirestrictions()
        enabled = restrictions.get("enableWithdrawals") if isinstance(restrictions, dict) else None
        if enabled is None and isinstance(account, dict):
            enabled = account.get("canWithdraw")  # account-level flag; the key-level one is preferred
        return ValidationOutcome(verified=True, can_withdraw=None if enabled is None else bool(enabled))
