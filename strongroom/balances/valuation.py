"""Valuing balances in USD and BTC from one venue's last prices: pure functions, exact Decimals.

The rules (issue 9):

* USD, USDT, USDC, BUSD and FDUSD count as USD at exactly 1.
* Any other asset (BTC included) is priced through its first pair quoted in a USD-like asset
  (``X/USDT``, then ``X/USD``, ``X/USDC``, ``X/FDUSD``, ``X/BUSD``); failing that through ``X/BTC``
  times BTC's USD price; failing that through the inverse of a USD-like pair based on it
  (``USDT/X``: fiat such as TRY or BRL). Nothing else: an asset without any of these is unpriced
  (``usd`` None, counted in ``unpriced_assets``), never guessed.
* An asset's BTC value is the asset itself for BTC, otherwise its USD value divided by BTC's USD
  price (None when either is unknown).

Arithmetic runs in a 60-digit context, so sums and products of venue amounts and prices are exact;
only divisions (BTC values, inverse prices) are rounded, half-even, to 18 decimal places. Every
result is normalised (no trailing zeros, no exponent once rendered with ``format(d, "f")``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

from strongroom.exchanges.outcomes import AssetBalance

USD_LIKE: tuple[str, ...] = ("USD", "USDT", "USDC", "BUSD", "FDUSD")
# the quotes tried for "X/<quote>", in order of preference
USD_QUOTES: tuple[str, ...] = ("USDT", "USD", "USDC", "FDUSD", "BUSD")
BTC = "BTC"
DIVISION_PLACES = 18
CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
_QUANTUM = Decimal(1).scaleb(-DIVISION_PLACES)
ONE = Decimal(1)


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


def clean(value: Decimal) -> Decimal:
    """Return ``value`` without trailing zeros (``0`` for any zero, never ``-0`` or ``0E-8``)."""
    if not value:
        return Decimal(0)
    with localcontext(CONTEXT):
        normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:  # 3.12E+4 -> 31200 (same value, plain digits)
        normal = normal.quantize(ONE, context=CONTEXT)
    return normal


def render(value: Decimal) -> str:
    """Return ``value`` as a plain decimal string (no exponent, no trailing zeros): ``"31200"``, ``"0.624"``."""
    return format(clean(value), "f")


def divide(numerator: Decimal, denominator: Decimal) -> Decimal:
    """Return ``numerator / denominator`` rounded half-even to 18 decimal places, cleaned."""
    with localcontext(CONTEXT):
        quotient = numerator / denominator
        exponent = quotient.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -DIVISION_PLACES:
            quotient = quotient.quantize(_QUANTUM)
    return clean(quotient)


def usd_price(asset: str, prices: Mapping[str, Decimal]) -> Decimal | None:
    """Return the USD price of one unit of ``asset`` from ``prices`` (unified symbol -> last price), or None."""
    if asset in USD_LIKE:
        return ONE
    for quote in USD_QUOTES:
        price = prices.get(f"{asset}/{quote}")
        if price is not None and price > 0:
            return clean(price)
    if asset != BTC:
        in_btc = prices.get(f"{asset}/{BTC}")
        btc_usd = usd_price(BTC, prices)
        if in_btc is not None and in_btc > 0 and btc_usd is not None:
            with localcontext(CONTEXT):
                return clean(in_btc * btc_usd)
    for quote in USD_QUOTES:
        inverse = prices.get(f"{quote}/{asset}")
        if inverse is not None and inverse > 0:
            return divide(ONE, inverse)
    return None


def value_assets(balances: Mapping[str, AssetBalance], prices: Mapping[str, Decimal]) -> tuple[AssetValue, ...]:
    """Return every asset of ``balances`` valued from ``prices``, sorted by USD value descending, unpriced last.

    Amounts are kept as the venue reported them (cleaned of trailing zeros).
    """
    btc_usd = usd_price(BTC, prices)
    valued: list[AssetValue] = []
    for asset, amounts in balances.items():
        price = usd_price(asset, prices)
        total = clean(amounts.total)
        with localcontext(CONTEXT):
            usd = clean(total * price) if price is not None else None
        if asset == BTC:
            btc: Decimal | None = total
        elif usd is not None and btc_usd is not None:
            btc = divide(usd, btc_usd)
        else:
            btc = None
        valued.append(AssetValue(asset=asset, free=clean(amounts.free), used=clean(amounts.used), total=total,
                                 usd=usd, btc=btc, usd_price=price))
    return tuple(sorted(valued, key=order_key))


def order_key(value: AssetValue) -> tuple[int, Decimal, str]:
    """Sort key: priced assets first by USD value descending, then unpriced ones; ties by asset code."""
    if value.usd is None:
        return (1, Decimal(0), value.asset)
    return (0, -value.usd, value.asset)


def totals(assets: Iterable[AssetValue]) -> tuple[Decimal, Decimal, int]:
    """Return (total USD, total BTC, unpriced assets) of ``assets``: the sums of the known values."""
    usd = Decimal(0)
    btc = Decimal(0)
    unpriced = 0
    with localcontext(CONTEXT):
        for value in assets:
            if value.usd is None:
                unpriced += 1
            else:
                usd += value.usd
            if value.btc is not None:
                btc += value.btc
    return clean(usd), clean(btc), unpriced


def combine(parts: Iterable[AssetValue]) -> tuple[AssetValue, ...]:
    """Return the assets of several accounts summed by asset code, sorted like ``value_assets``.

    An asset's ``usd``/``btc`` are the sums of its priced parts (None if no part is priced);
    its ``usd_price`` is kept only when every part is priced (then it is ``usd / total``).
    """
    grouped: dict[str, list[AssetValue]] = {}
    for part in parts:
        grouped.setdefault(part.asset, []).append(part)
    combined: list[AssetValue] = []
    with localcontext(CONTEXT):
        for asset, group in grouped.items():
            total = sum((p.total for p in group), Decimal(0))
            usd_parts = [p.usd for p in group if p.usd is not None]
            btc_parts = [p.btc for p in group if p.btc is not None]
            usd = clean(sum(usd_parts, Decimal(0))) if usd_parts else None
            btc = clean(sum(btc_parts, Decimal(0))) if btc_parts else None
            prices = {p.usd_price for p in group}
            if len(usd_parts) != len(group):
                price = None
            elif len(prices) == 1:
                price = next(iter(prices))
            else:
                price = divide(usd, total) if usd is not None and total else None
            combined.append(AssetValue(
                asset=asset, free=clean(sum((p.free for p in group), Decimal(0))),
                used=clean(sum((p.used for p in group), Decimal(0))), total=clean(total),
                usd=usd, btc=btc, usd_price=price))
    return tuple(sorted(combined, key=order_key))
