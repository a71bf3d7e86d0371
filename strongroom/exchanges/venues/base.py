"""The generic venue: how the gateway validates keys, reads balances and prices through any ccxt venue.

Freqtrade style: ``Venue`` does what works for every ccxt venue; a venue with quirks gets a small
subclass in its own module (``binance.py``, ``okx.py``) that overrides only what differs, and is
registered by catalogue id in ``strongroom.exchanges.venues``. Methods receive a configured
``ccxt.async_support`` client (see ``strongroom.exchanges.client``) and let ccxt's errors
propagate: the gateway classifies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from strongroom import errors
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.exchanges.outcomes import AssetBalance, ValidationOutcome


def to_decimal(value: Any) -> Decimal | None:
    """Return ``value`` as a finite Decimal: from ccxt's decimal string as is, from anything else via ``str``.

    Returns None for None, blanks and non-numbers (never a float's binary expansion).
    """
    if value is None or isinstance(value, bool):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class Venue:
    """Generic ccxt venue.

    * ``probe`` (credential check): one ``fetch_balance``, which needs the venue's markets
      (``probe_needs_markets``); the venue does not say whether the key can withdraw.
    * ``balance_params``: ccxt's ``type`` parameter is the account type (spot, margin, swap, ...).
    * ``parse_balance`` / ``ticker_price``: ccxt's unified structures, read as exact decimals.
    """

    ids: ClassVar[tuple[str, ...]] = ()  # catalogue ids served by this class (subclasses)
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
