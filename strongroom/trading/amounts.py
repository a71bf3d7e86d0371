"""An order's amount and price against the venue's market rules (precision and minimums): pure functions.

The amount is rounded only when the caller asks (``rounding="down"``: down to the amount step); otherwise an
amount off the step is refused. A limit price must be on the price step (never rounded: a price is the
caller's decision). Below the minimum amount or notional: BadRequest (400) naming the minimum.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from strongroom.errors import BadRequest, ValidationFailed
from strongroom.exchanges.orders import MarketRules

MAX_DIGITS = 40


def plain(value: Decimal) -> str:
    """Return ``value`` as a plain decimal string (no exponent, no trailing zeros)."""
    if not value:
        return "0"
    text = format(value.normalize(), "f")
    return text


def parse_decimal(name: str, value: object) -> Decimal:
    """Return ``value`` (a decimal string) as a positive Decimal. Raises ValidationFailed naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, str) or not value.strip() or len(value) > MAX_DIGITS:
        raise ValidationFailed(f"{name} must be a decimal string", fields={name: "a decimal string such as \"0.01\""})
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValidationFailed(f"{name} must be a decimal string", fields={name: "a decimal string such as \"0.01\""}) \
            from None
    if not number.is_finite() or number <= 0:
        raise ValidationFailed(f"{name} must be positive", fields={name: "positive"})
    return number


def _on_step(value: Decimal, step: Decimal) -> bool:
    return (value % step) == 0


def fit_amount(amount: Decimal, rules: MarketRules, rounding: str) -> Decimal:
    """Return ``amount`` on the venue's amount step (rounded down if ``rounding == "down"``).

    Raises BadRequest when it is off the step and rounding is ``none``, or when it is below the minimum amount
    (after rounding).
    """
    _at_least_minimum(amount, rules)
    step = rules.amount_step
    if step is not None and step > 0 and not _on_step(amount, step):
        if rounding != "down":
            raise BadRequest(f"amount must be a multiple of {plain(step)} (or ask rounding=down)",
                             fields={"amount": f"a multiple of {plain(step)}"})
        amount = (amount / step).to_integral_value(rounding=ROUND_DOWN) * step
    _at_least_minimum(amount, rules)
    if amount <= 0:
        raise BadRequest("amount rounds down to zero", fields={"amount": "rounds to zero"})
    return amount


def _at_least_minimum(amount: Decimal, rules: MarketRules) -> None:
    if rules.min_amount is not None and amount < rules.min_amount:
        raise BadRequest(f"amount is below the minimum {plain(rules.min_amount)}",
                         fields={"amount": f"minimum {plain(rules.min_amount)}"})


def check_price(price: Decimal, rules: MarketRules) -> None:
    """Raise BadRequest unless ``price`` is on the venue's price step."""
    step = rules.price_step
    if step is not None and step > 0 and not _on_step(price, step):
        raise BadRequest(f"price must be a multiple of {plain(step)}", fields={"price": f"a multiple of {plain(step)}"})


def check_cost(amount: Decimal, price: Decimal | None, rules: MarketRules) -> None:
    """Raise BadRequest if ``amount * price`` (in the quote asset) is below the venue's minimum notional.
    Without a price (a market order with no last price) there is nothing to check here: the venue decides."""
    if rules.min_cost is None or price is None:
        return
    if amount * price < rules.min_cost:
        raise BadRequest(f"the order's value is below the minimum {plain(rules.min_cost)} {rules.quote}",
                         fields={"amount": f"minimum value {plain(rules.min_cost)} {rules.quote}"})
