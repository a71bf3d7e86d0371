"""Profits over a balance history and percentage shares (strongroom/balances/figures.py): pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from strongroom.balances.figures import NO_PROFITS, Change, profits, shares, total
from strongroom.balances.services import HistoryPoint

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def point(hours_ago: float, usd: str, btc: str) -> HistoryPoint:
    return HistoryPoint(NOW - timedelta(hours=hours_ago), Decimal(usd), Decimal(btc))


def test_no_history_is_zero():
    assert profits([], NOW) == NO_PROFITS
    assert NO_PROFITS.usd.amount == 0 and NO_PROFITS.usd.percentage == 0


def test_all_time_and_day():
    history = [point(72, "1000", "0.02"), point(30, "1100", "0.021"), point(20, "1200", "0.022"),
               point(1, "1320", "0.0231")]
    result = profits(history, NOW)
    assert result.usd == Change(Decimal(1000), Decimal(1320))
    assert result.usd.amount == Decimal(320) and result.usd.percentage == Decimal("32.00")
    assert result.btc.amount == Decimal("0.0031") and result.btc.percentage == Decimal("15.50")
    # the day starts at the last point at or before 24 h ago (30 h ago)
    assert result.day_usd == Change(Decimal(1100), Decimal(1320))
    assert result.day_usd.percentage == Decimal("20.00")


def test_young_history_day_starts_at_the_first_point():
    history = [point(3, "500", "0.01"), point(1, "450", "0.009")]
    result = profits(history, NOW)
    assert result.day_usd == result.usd == Change(Decimal(500), Decimal(450))
    assert result.usd.percentage == Decimal("-10.00")


def test_percentage_of_nothing_is_zero():
    result = profits([point(2, "0", "0"), point(1, "100", "0.002")], NOW)
    assert result.usd.amount == 100 and result.usd.percentage == 0


def test_total_sums_starts_and_ends():
    a = profits([point(2, "100", "1"), point(1, "150", "1")], NOW)
    b = profits([point(2, "300", "1"), point(1, "250", "1")], NOW)
    both = total([a, b])
    assert both.usd == Change(Decimal(400), Decimal(400)) and both.usd.percentage == 0
    assert total([]) == NO_PROFITS


def test_shares_sum_to_100():
    assert shares([Decimal(30000), Decimal(6000), Decimal(1200)]) == [
        Decimal("80.64"), Decimal("16.13"), Decimal("3.23")]
    assert shares([Decimal(1), Decimal(1), Decimal(1)]) == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert shares([Decimal(0), Decimal(0)]) == [Decimal(0), Decimal(0)]
    assert shares([]) == []
    assert shares([Decimal(5), Decimal(-3)]) == [Decimal(100), Decimal(0)]


@given(st.lists(st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False), min_size=1, max_size=40))
def test_shares_always_sum_to_100(values):
    result = shares(values)
    assert len(result) == len(values)
    if sum(values):
        assert sum(result) == 100
        assert all(r >= 0 and r.as_tuple().exponent >= -2 for r in result)
        # no share is more than a cent away from its exact value
        whole = sum(values)
        assert all(abs(r - v * 100 / whole) < Decimal("0.01") for r, v in zip(result, values, strict=True))
    else:
        assert not any(result)
