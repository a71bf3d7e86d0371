"""Binance: the key check is the account endpoint plus the key's API restrictions (withdrawals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.exchanges.venues.base import Venue


class BinanceVenue(Venue):
    """``GET /api/v3/account`` (no market load) + ``GET /sapi/v1/account/apiRestrictions``.

    ``enableWithdrawals`` of the key is preferred to the account's ``canWithdraw``. Markets are
    the spot ones only (prices for valuation are spot prices; futures markets cost two more requests).
    """

    ids: ClassVar[tuple[str, ...]] = ("binance",)
    probe_requests: ClassVar[int] = 2
    probe_needs_markets: ClassVar[bool] = False

    def prepare(self, exchange: Any) -> None:
        exchange.options["fetchMarkets"] = {"types": ["spot"]}

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
