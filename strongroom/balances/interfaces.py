"""The balances capability's contract: the façade surfaces and the CLI call (its docstrings are the contract).

Every method is async: database work runs in a worker thread inside the service, exchange calls on the
event loop. Every method taking a principal needs scope ``read``; a key bound to accounts sees only those
(NotFound otherwise). Money is ``Decimal`` throughout.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from strongroom.balances.figures import HistoryPoint, Profits
from strongroom.balances.services import HISTORY_LIMIT, Portfolio, Snapshot
from strongroom.principal import Principal


class Balances(Protocol):
    """Balance snapshots: read the stored ones, load new ones live through the gateway (credentials opened
    in memory only), valued from the venues' public tickers."""

    async def now(self) -> datetime:
        """Return the service's current aware UTC time (snapshot ages are measured against it)."""
        ...

    async def latest(self, principal: Principal, account_id: int) -> Snapshot | None:
        """Return the account's last snapshot (no exchange call; any status, disconnected included), None if
        it was never loaded. Raises NotFound (not the caller's), InsufficientScope."""
        ...

    async def latest_many(self, principal: Principal, account_ids: Iterable[int]) -> dict[int, Snapshot]:
        """Return the last snapshot of each of ``account_ids`` the caller sees and that was ever loaded, by
        account id (others absent), in one query. Raises InsufficientScope."""
        ...

    async def profits_many(self, principal: Principal, account_ids: Iterable[int], now: datetime) -> dict[int, Profits]:
        """Return the all-time and day profits of each of ``account_ids`` the caller sees and that has a snapshot,
        by account id (others absent), as ``profits_over(history)`` over its whole history, read in two
        queries whatever their number (for account lists). Raises InsufficientScope."""
        ...

    async def history(self, principal: Principal, account_id: int, since: datetime | None = None,
                      until: datetime | None = None, *, limit: int = HISTORY_LIMIT) -> list[HistoryPoint]:
        """Return the account's stored totals over time, oldest first, ``since <= at <= until`` (naive: UTC),
        at most ``limit`` (the newest of the range). Raises NotFound, InsufficientScope, ValidationFailed."""
        ...

    async def portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        """Return the last known totals of every live account of ``user_id`` (default the caller) the caller
        sees (no exchange call). Raises InsufficientScope, Forbidden (another user's, not an admin), NotFound."""
        ...

    async def portfolio_history(self, principal: Principal, since: datetime, *, user_id: int | None = None,
                                bucket_seconds: int = 3600) -> list[HistoryPoint]:
        """Return the portfolio's value over time from ``since``, oldest first: at the end of each bucket of
        ``bucket_seconds`` holding a stored snapshot, the sum of every live account's last totals by then.
        Raises as ``portfolio``."""
        ...

    async def refresh(self, principal: Principal, account_id: int) -> Snapshot:
        """Load the account's balances live, value and store them; return the snapshot. A failure stores
        nothing and leaves the last snapshot readable: ExchangeUnavailable (503), CredentialsRejected (the
        account is now ``invalid``), WithdrawalPermission (now ``suspended``), Conflict (not loadable in its
        status, or it changed meanwhile), ExchangeNotSupported, CredentialsUnreadable, NotFound."""
        ...

    async def refresh_or_latest(self, principal: Principal, account_id: int) -> Snapshot:
        """``refresh``; when the load fails but a snapshot exists, that snapshot (else the failure)."""
        ...

    async def refresh_portfolio(self, principal: Principal, *, user_id: int | None = None) -> Portfolio:
        """Load every live account live (concurrently, bounded); an account that fails keeps its last
        snapshot and says why. Raises as ``portfolio``."""
        ...
