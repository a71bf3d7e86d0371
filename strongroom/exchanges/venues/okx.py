"""The OKX family (okx, myokx, okxus): the key check is the account config and its ``perm``."""

from __future__ import annotations

from typing import Any, ClassVar

from strongroom.exchanges.outcomes import ValidationOutcome
from strongroom.exchanges.venues.base import Venue


class OkxVenue(Venue):
    """``GET /api/v5/account/config`` (signed, needs the passphrase); its ``perm``
    ("read_only,trade,withdraw") tells whether the key can withdraw.

    Balances: spot, margin, swap, future and option all live in OKX's unified trading account
    (ccxt reads it for every type but ``funding``). Markets are the spot ones only.
    """

    ids: ClassVar[tuple[str, ...]] = ("okx", "myokx", "okxus")
    probe_requests: ClassVar[int] = 1
    probe_needs_markets: ClassVar[bool] = False

    def prepare(self, exchange: Any) -> None:
        exchange.options["fetchMarkets"] = {"types": ["spot"]}

    async def probe(self, exchange: Any) -> ValidationOutcome:
        response = await exchange.private_get_account_config()
        data = response.get("data") if isinstance(response, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        perm = first.get("perm")
        can_withdraw = None if not isinstance(perm, str) else "withdraw" in {p.strip() for p in perm.split(",")}
        return ValidationOutcome(verified=True, can_withdraw=can_withdraw)
