"""Balances and valuation through stored credentials (issue 9): the interface.

THIS MODULE IS THE CONTRACT the surfaces code against (3Commas, Cadenza, /v1); the balances work
fills in the bodies. Money is ``Decimal`` end to end; surfaces render it as decimal strings
without exponents (``format(d, "f")``), never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from strongroom.principal import Principal


@dataclass(frozen=True)
class AssetValue:
    """One asset of one account at one time: amounts as the venue reports them, and their value.

    ``usd``/``btc`` are None when no price was found (the asset is counted in ``unpriced_assets``,
    never guessed).
    """

    asset: str  # upper-case code as the venue spells it after ccxt's unification ("BTC", "USDT")
    free: Decimal
    used: Decimal
    total: Decimal
    usd: Decimal | None
    btc: Decimal | None
    usd_price: Decimal | None  # price of one unit in USD (1 for USD-like stablecoins)


@dataclass(frozen=True)
class Snapshot:
    """A stored load of one account's balances (no secret in it)."""

    id: int
    account_id: int
    fetched_at: datetime  # timezone-aware UTC
    assets: tuple[AssetValue, ...]  # sorted by USD value descending, unpriced last
    total_usd: Decimal  # sum of the priced assets
    total_btc: Decimal
    unpriced_assets: int

    def age_seconds(self, now: datetime) -> float:
        """Seconds between ``fetched_at`` and ``now``."""
        return (now - self.fetched_at).total_seconds()


@dataclass(frozen=True)
class HistoryPoint:
    """One point of an account's balance history (seed 001's balance_chart_data)."""

    at: datetime
    usd: Decimal
    btc: Decimal


@dataclass(frozen=True)
class AccountTotals:
    """One account's part of a portfolio: its last snapshot (None if never loaded)."""

    account_id: int
    snapshot: Snapshot | None


@dataclass(frozen=True)
class Portfolio:
    """All the caller's live accounts (those the principal sees): totals per asset and per account."""

    accounts: tuple[AccountTotals, ...]
    assets: tuple[AssetValue, ...]  # summed across accounts, by asset
    total_usd: Decimal
    total_btc: Decimal
    unpriced_assets: int


class BalanceService:
    """Reads balances through the gateway with credentials opened in memory only, values them from
    the venue's public tickers, and stores snapshots.

    Every method needs scope ``read``; a key bound to accounts sees only those (NotFound otherwise).
    """

    def latest(self, principal: Principal, account_id: int) -> Snapshot | None:
        """Return the account's last snapshot (no exchange call), None if it was never loaded.

        Raises NotFound (not the principal's), InsufficientScope.
        """
        raise NotImplementedError

    async def refresh(self, principal: Principal, account_id: int) -> Snapshot:
        """Load the balances live, value them, store and return the snapshot.

        Raises NotFound, InsufficientScope, Conflict (account disconnected or disabled),
        ExchangeUnavailable (503 + Retry-After; the last snapshot stays readable),
        CredentialsRejected (409; the account becomes ``invalid``, audited),
        WithdrawalPermission (the account becomes ``suspended``, audited, unless allowed),
        ExchangeNotSupported (no live support for the venue), CredentialsUnreadable.
        """
        raise NotImplementedError

    def history(self, principal: Principal, account_id: int, since: datetime | None = None,
                until: datetime | None = None) -> list[HistoryPoint]:
        """Return the account's stored totals over time, oldest first. Raises NotFound, InsufficientScope."""
        raise NotImplementedError

    def portfolio(self, principal: Principal) -> Portfolio:
        """Return the last known totals of every live account the principal sees (no exchange call)."""
        raise NotImplementedError

    async def refresh_portfolio(self, principal: Principal) -> Portfolio:
        """Refresh every live account the principal sees (concurrently, within the gateway's per-venue
        limits), then return the portfolio. An account that fails keeps its last snapshot."""
        raise NotImplementedError
