"""What the exchange gateway returns: plain values, no ccxt types."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


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
