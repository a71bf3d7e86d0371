"""Balance snapshots, their valuation and the figures derived from them."""

from __future__ import annotations

from strongroom.balances.figures import Profits, profits, shares, total
from strongroom.balances.services import HISTORY_LIMIT, AccountTotals, BalanceService, HistoryPoint, Portfolio, Snapshot
from strongroom.balances.valuation import AssetValue, render

__all__ = ["HISTORY_LIMIT", "AccountTotals", "AssetValue", "BalanceService", "HistoryPoint", "Portfolio", "Profits", "Snapshot", "profits", "render", "shares", "total"]
