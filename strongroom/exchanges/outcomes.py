"""What the exchange gateway returns: plain values, no ccxt types."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ValidationOutcome:
    """``verified`` False means no live check exists for the venue (store as ``unverified``).

    ``can_withdraw`` is True/False when the venue told us, None when unknown.
    """

    verified: bool
    can_withdraw: bool | None


@dataclass(frozen=True)
class AssetBalance:
    """One asset of one account: ``free + used == total`` as the venue reports them, exact decimals."""

    free: Decimal
    used: Decimal
    total: Decimal
