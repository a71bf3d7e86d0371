"""Balance snapshots, their valuation and the figures derived from them."""

from __future__ import annotations

from strongroom.balances.figures import NO_PROFITS, HistoryPoint, Profits, shares
from strongroom.balances.figures import profits as profits_over
from strongroom.balances.figures import total as total_profits
from strongroom.balances.interfaces import Balances
from strongroom.balances.services import (
    HISTORY_LIMIT,
    AccountTotals,
    BalanceService,
    BalancesFacade,
    Portfolio,
    Snapshot,
)
from strongroom.balances.valuation import AssetValue, render

__all__ = ["HISTORY_LIMIT", "NO_PROFITS", "AccountTotals", "AssetValue", "BalanceService", "Balances", "BalancesFacade", "HistoryPoint", "Portfolio",
           "Profits", "Snapshot", "profits_over", "render", "shares", "total_profits"]
