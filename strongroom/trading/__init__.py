"""Trading through stored credentials (issue 19): orders under risk policies, idempotent, audited."""

from __future__ import annotations

from strongroom.trading.interfaces import Trading
from strongroom.trading.policies import PolicyView
from strongroom.trading.policy import RULES, Policy
from strongroom.trading.services import (
    FINAL,
    OPEN,
    RECONCILE_KIND,
    OrderQuery,
    OrderRequest,
    OrderView,
    Submitted,
    TradingService,
    venue_client_id,
)

__all__ = ["FINAL", "OPEN", "RECONCILE_KIND", "RULES", "OrderQuery", "OrderRequest", "OrderView", "Policy", "PolicyView",
           "Submitted", "Trading", "TradingService", "venue_client_id"]
