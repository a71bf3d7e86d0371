"""Risk policies: their fields, how a key's narrows its owner's, what "wider" means, and the checks an order
passes (pure functions, no database, no exchange: the service feeds them what it read).

A null limit is no limit, ``allowed_symbols`` None is every symbol. A refusal is RiskPolicyRefused naming the
field (``rule``); ``policy`` when the account has none (trading is off until it has one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from strongroom.errors import RiskPolicyRefused, ValidationFailed

MAX_SYMBOLS = 200
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}/(?:[A-Z0-9]{1,20}|\*)$")  # BTC/USDT, or BTC/* (any quote)
MAX_COUNT = 1_000_000
RULES = ("kill_switch", "allowed_symbols", "allow_market_orders", "max_notional_usd", "price_band_percent",
         "max_open_orders", "max_orders_per_minute")
NO_POLICY = "policy"  # the rule named when the account has no policy


@dataclass(frozen=True)
class Policy:
    """A risk policy's fields (see the module docstring for what None means)."""

    allowed_symbols: tuple[str, ...] | None = None
    max_notional_usd: Decimal | None = None
    max_open_orders: int | None = None
    max_orders_per_minute: int | None = None
    price_band_percent: Decimal | None = None
    allow_market_orders: bool = False
    kill_switch: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as JSON values (decimals as strings)."""
        return {"allowed_symbols": None if self.allowed_symbols is None else list(self.allowed_symbols),
                "max_notional_usd": _text(self.max_notional_usd), "max_open_orders": self.max_open_orders,
                "max_orders_per_minute": self.max_orders_per_minute,
                "price_band_percent": _text(self.price_band_percent),
                "allow_market_orders": self.allow_market_orders, "kill_switch": self.kill_switch}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _decimal(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationFailed(f"{name} must be a decimal string", fields={name: "a decimal string"})
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationFailed(f"{name} must be a decimal string", fields={name: "a decimal string"}) from None
    if not number.is_finite() or number <= 0 or number > Decimal("1e15"):
        raise ValidationFailed(f"{name} must be positive", fields={name: "positive, at most 1e15"})
    return number


def _count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValidationFailed(f"{name} must be a whole number from 0 to {MAX_COUNT}",
                               fields={name: f"0 to {MAX_COUNT}"})
    return value


def parse(body: Mapping[str, object]) -> Policy:
    """Return the policy ``body`` describes (absent fields: None / False). Raises ValidationFailed naming a field."""
    unknown = sorted(set(body) - set(RULES))
    if unknown:
        raise ValidationFailed(f"unknown field: {unknown[0][:40]}", fields={unknown[0][:40]: "unknown field"})
    symbols = body.get("allowed_symbols")
    allowed: tuple[str, ...] | None = None
    if symbols is not None:
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols) or len(symbols) > MAX_SYMBOLS:
            raise ValidationFailed("allowed_symbols must be a list of symbols",
                                   fields={"allowed_symbols": f"a list of at most {MAX_SYMBOLS} symbols"})
        bad = [s for s in symbols if not SYMBOL_PATTERN.match(s)]
        if bad:
            raise ValidationFailed(f"not a symbol or pattern: {bad[0][:40]}",
                                   fields={"allowed_symbols": "BASE/QUOTE or BASE/* in upper case"})
        allowed = tuple(dict.fromkeys(symbols))
    flags = {}
    for name in ("allow_market_orders", "kill_switch"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise ValidationFailed(f"{name} must be true or false", fields={name: "a boolean"})
        flags[name] = value
    band = _decimal("price_band_percent", body.get("price_band_percent"))
    if band is not None and band > 100:
        raise ValidationFailed("price_band_percent is at most 100", fields={"price_band_percent": "at most 100"})
    return Policy(allowed_symbols=allowed, max_notional_usd=_decimal("max_notional_usd", body.get("max_notional_usd")),
                  max_open_orders=_count("max_open_orders", body.get("max_open_orders")),
                  max_orders_per_minute=_count("max_orders_per_minute", body.get("max_orders_per_minute")),
                  price_band_percent=band, **flags)


def symbol_allowed(allowed: tuple[str, ...] | None, symbol: str) -> bool:
    """Return True if ``symbol`` (``BASE/QUOTE``) is in ``allowed`` exactly or by a ``BASE/*`` pattern."""
    if allowed is None:
        return True
    base = symbol.split("/", 1)[0]
    return symbol in allowed or f"{base}/*" in allowed


def _symbols_within(inner: tuple[str, ...] | None, outer: tuple[str, ...] | None) -> bool:
    """True if every symbol ``inner`` allows, ``outer`` allows too."""
    if outer is None:
        return True
    if inner is None:
        return False
    for entry in inner:
        quote = entry.split("/", 1)[1]
        if quote == "*":
            if entry not in outer:
                return False
        elif not symbol_allowed(outer, entry):
            return False
    return True


def _lower(a: Any, b: Any) -> Any:
    """The tighter of two limits (None: no limit)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def narrow(account: Policy, key: Policy | None) -> Policy:
    """Return the policy in force for a key: the account's, narrowed by the key's (each limit the tighter, the
    symbols both allow, market orders only if both allow them, the kill switch if either has it)."""
    if key is None:
        return account
    if account.allowed_symbols is None:
        symbols = key.allowed_symbols
    elif key.allowed_symbols is None:
        symbols = account.allowed_symbols
    else:
        symbols = tuple(s for s in key.allowed_symbols if _symbols_within((s,), account.allowed_symbols))
        symbols += tuple(s for s in account.allowed_symbols
                         if s not in symbols and _symbols_within((s,), key.allowed_symbols))
    return Policy(allowed_symbols=symbols,
                  max_notional_usd=_lower(account.max_notional_usd, key.max_notional_usd),
                  max_open_orders=_lower(account.max_open_orders, key.max_open_orders),
                  max_orders_per_minute=_lower(account.max_orders_per_minute, key.max_orders_per_minute),
                  price_band_percent=_lower(account.price_band_percent, key.price_band_percent),
                  allow_market_orders=account.allow_market_orders and key.allow_market_orders,
                  kill_switch=account.kill_switch or key.kill_switch)


def widened(old: Policy | None, new: Policy) -> str | None:
    """Return the first field in which ``new`` is wider than ``old`` (None: ``new`` only narrows or sets the kill
    switch). No policy at all is trading off: any new policy widens it (``policy``)."""
    if old is None:
        return NO_POLICY
    if old.kill_switch and not new.kill_switch:
        return "kill_switch"
    if not _symbols_within(new.allowed_symbols, old.allowed_symbols):
        return "allowed_symbols"
    if new.allow_market_orders and not old.allow_market_orders:
        return "allow_market_orders"
    for field in fields(Policy):
        name = field.name
        if name in ("allowed_symbols", "allow_market_orders", "kill_switch"):
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before is not None and (after is None or after > before):
            return name
    return None


@dataclass(frozen=True)
class Ticket:
    """What the checks need to know of one order."""

    symbol: str
    type: str  # limit | market
    amount: Decimal
    price: Decimal | None  # the limit price
    last_price: Decimal | None  # the venue's last price of the symbol (None: unknown)
    quote_usd: Decimal | None  # the USD price of one unit of the quote asset (None: unknown)


def check(policy: Policy | None, ticket: Ticket) -> None:
    """Raise RiskPolicyRefused naming the first rule the order breaks (counts are checked by :func:`check_counts`)."""
    if policy is None:
        raise RiskPolicyRefused("trading is off for this account until it has a trading policy", rule=NO_POLICY)
    if policy.kill_switch:
        raise RiskPolicyRefused("the kill switch is on: no new order is accepted", rule="kill_switch")
    if not symbol_allowed(policy.allowed_symbols, ticket.symbol):
        raise RiskPolicyRefused(f"{ticket.symbol} is not an allowed symbol", rule="allowed_symbols")
    if ticket.type == "market" and not policy.allow_market_orders:
        raise RiskPolicyRefused("market orders are not allowed", rule="allow_market_orders")
    if policy.max_notional_usd is not None:
        price = ticket.price if ticket.price is not None else ticket.last_price
        if price is None or ticket.quote_usd is None:
            raise RiskPolicyRefused("the order's USD value cannot be determined (no price)", rule="max_notional_usd")
        notional = ticket.amount * price * ticket.quote_usd
        if notional > policy.max_notional_usd:
            raise RiskPolicyRefused(f"the order is worth more than {_text(policy.max_notional_usd)} USD",
                                    rule="max_notional_usd")
    if policy.price_band_percent is not None and ticket.price is not None:
        last = ticket.last_price
        if last is None or last <= 0:
            raise RiskPolicyRefused("no last price to check the price band against", rule="price_band_percent")
        if abs(ticket.price - last) * 100 > policy.price_band_percent * last:
            raise RiskPolicyRefused(f"the price is more than {_text(policy.price_band_percent)}% from the last "
                                    f"price", rule="price_band_percent")


def check_counts(policy: Policy, open_orders: int, last_minute: int) -> None:
    """Raise RiskPolicyRefused if one more order would exceed the open-order or per-minute limits."""
    if policy.max_open_orders is not None and open_orders >= policy.max_open_orders:
        raise RiskPolicyRefused(f"at most {policy.max_open_orders} open orders", rule="max_open_orders")
    if policy.max_orders_per_minute is not None and last_minute >= policy.max_orders_per_minute:
        raise RiskPolicyRefused(f"at most {policy.max_orders_per_minute} orders a minute", rule="max_orders_per_minute")


def with_kill_switch(policy: Policy, on: bool) -> Policy:
    """Return ``policy`` with the kill switch ``on``."""
    return replace(policy, kill_switch=on)
