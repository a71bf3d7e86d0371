"""Figures derived from stored balance snapshots: profit over the history, and percentage shares.

Pure functions over the balance history (its points, ``HistoryPoint``, are defined here): no database,
no exchange call. Money stays ``Decimal``; percentages are rounded to two places at the end.

*Profit* here is the change in value between two snapshots: Strongroom does not see deposits or
withdrawals, so a deposit counts as profit. The all-time change runs from the first stored snapshot
to the last; the day's change from the last snapshot at or before 24 hours ago (or, when the
history is younger than a day, the first one) to the last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class HistoryPoint:
    """One point of an account's balance history (seed 001's balance_chart_data)."""

    at: datetime
    usd: Decimal
    btc: Decimal


ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
DAY = timedelta(days=1)


def percent(part: Decimal, whole: Decimal) -> Decimal:
    """Return ``part`` as a percentage of ``whole``, rounded half up to two places (0 when ``whole`` is 0)."""
    if not whole:
        return ZERO.quantize(CENT)
    return (part * HUNDRED / whole).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Change:
    """A value's change from ``start`` to ``end``."""

    start: Decimal
    end: Decimal

    @property
    def amount(self) -> Decimal:
        """Return ``end - start``."""
        return self.end - self.start

    @property
    def percentage(self) -> Decimal:
        """Return the change as a percentage of ``start`` (two places; 0 when ``start`` is 0)."""
        return percent(self.amount, abs(self.start))

    def __add__(self, other: Change) -> Change:
        return Change(self.start + other.start, self.end + other.end)


NO_CHANGE = Change(ZERO, ZERO)


@dataclass(frozen=True)
class Profits:
    """An account's (or a portfolio's) changes in USD and in BTC, over all its history and over the last day."""

    usd: Change = NO_CHANGE
    btc: Change = NO_CHANGE
    day_usd: Change = NO_CHANGE
    day_btc: Change = NO_CHANGE

    def __add__(self, other: Profits) -> Profits:
        return Profits(self.usd + other.usd, self.btc + other.btc, self.day_usd + other.day_usd,
                       self.day_btc + other.day_btc)


NO_PROFITS = Profits()


def profits(history: Sequence[HistoryPoint], now: datetime) -> Profits:
    """Return the changes over ``history`` (oldest first, as ``BalanceService.history`` returns it).

    All-time: first point to last. Day: the last point at or before ``now - 24h`` (else the first)
    to the last. No history: every change is zero.
    """
    if not history:
        return NO_PROFITS
    first, last = history[0], history[-1]
    since = now - DAY
    day_start = first
    for point in history:
        if point.at > since:
            break
        day_start = point
    return Profits(usd=Change(first.usd, last.usd), btc=Change(first.btc, last.btc),
                   day_usd=Change(day_start.usd, last.usd), day_btc=Change(day_start.btc, last.btc))


def total(items: Iterable[Profits]) -> Profits:
    """Return the sum of several accounts' profits (percentages then relate to the summed starts)."""
    out = NO_PROFITS
    for item in items:
        out = out + item
    return out


def shares(values: Sequence[Decimal]) -> list[Decimal]:
    """Return each value's share of their sum in percent, two places, summing to exactly 100.

    Largest-remainder rounding: every share is rounded down to the cent, then the cents left over
    go to the largest remainders (the earlier value on a tie). Negative values count as 0. When the
    sum is 0 every share is 0.
    """
    clean = [max(v, ZERO) for v in values]
    whole = sum(clean, ZERO)
    if not whole:
        return [ZERO.quantize(CENT) for _ in clean]
    exact = [v * HUNDRED / whole for v in clean]
    floors = [e.quantize(CENT, rounding=ROUND_DOWN) for e in exact]
    left = int(((HUNDRED - sum(floors, ZERO)) / CENT).to_integral_value())
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += CENT
    return floors
