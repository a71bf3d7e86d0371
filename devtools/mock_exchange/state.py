"""The mock's state: accounts with their balances, prices, the current behaviour and counters."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from devtools.mock_exchange.orders import Fault, MockOrder

EXCHANGES = ("binance", "okx")
MODES = ("normal", "rate_limited", "down", "slow")

# Wallets ("account types") each venue keeps per key, the first is the default.
# Binance: spot (/api/v3/account), cross margin (/sapi/v1/margin/account), USD-M futures (/fapi/v3/account).
# OKX: the unified trading account (/api/v5/account/balance) and the funding account (/api/v5/asset/balances).
WALLETS: dict[str, tuple[str, ...]] = {"binance": ("spot", "margin", "futures"), "okx": ("trading", "funding")}

# asset -> (free, used)
Holdings = dict[str, tuple[Decimal, Decimal]]


def _holdings(spec: dict[str, tuple[str, str]]) -> Holdings:
    return {asset: (Decimal(free), Decimal(used)) for asset, (free, used) in spec.items()}


# What every account holds unless told otherwise (POST /_mock/balances). With the default prices
# binance's spot wallet is worth 0.6 x 50,000 + 1,200 = 31,200 USD (0.624 BTC); okx's trading account
# 0.25 x 50,000 + 2 x 3,000 + 1,000 = 19,500 USD.
DEFAULT_BALANCES: dict[str, dict[str, Holdings]] = {
    "binance": {
        "spot": _holdings({"BTC": ("0.5", "0.1"), "USDT": ("1200", "0")}),
        "margin": _holdings({"BTC": ("0.05", "0"), "USDT": ("300", "0")}),
        "futures": _holdings({"USDT": ("900", "100")}),
    },
    "okx": {
        "trading": _holdings({"BTC": ("0.25", "0"), "ETH": ("1.5", "0.5"), "USDC": ("1000", "0")}),
        "funding": _holdings({"USDT": ("250", "0")}),
    },
}

# Last prices per unified symbol. Markets are these symbols plus DEFAULT_MARKETS.
DEFAULT_PRICES: dict[str, dict[str, Decimal]] = {
    venue: {"BTC/USDT": Decimal(50000), "ETH/USDT": Decimal(3000), "ETH/BTC": Decimal("0.06"),
            "BTC/USDC": Decimal(50000)}
    for venue in EXCHANGES
}
DEFAULT_MARKETS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "ETH/BTC", "BTC/USDC", "SOL/USDT")


@dataclass
class MockAccount:
    """One exchange key: its secret (and OKX passphrase), whether it can withdraw, its wallets."""

    api_key: str
    secret: str
    passphrase: str | None = None
    can_withdraw: bool = False
    balances: dict[str, Holdings] = field(default_factory=dict)


def _demo_accounts() -> dict[str, dict[str, MockAccount]]:
    def account(exchange: str, key: str, secret: str, passphrase: str | None = None,
                can_withdraw: bool = False) -> MockAccount:
        return MockAccount(key, secret, passphrase, can_withdraw, copy.deepcopy(DEFAULT_BALANCES[exchange]))

    return {
        "binance": {
            "demo-binance-key": account("binance", "demo-binance-key", "demo-binance-secret"),
            # more keys alike, so that each README example connects its own (one key, one account)
            **{f"demo-binance-key-{n}": account("binance", f"demo-binance-key-{n}", f"demo-binance-secret-{n}")
               for n in (2, 3, 4, 5)},
            "demo-binance-withdraw-key": account(
                "binance", "demo-binance-withdraw-key", "demo-binance-withdraw-secret", can_withdraw=True
            ),
        },
        "okx": {
            "demo-okx-key": account("okx", "demo-okx-key", "demo-okx-secret", "demo-okx-passphrase"),
        },
    }


# The pre-seeded demo credentials, in the shape the old module exported (printed by ``serve``).
DEMO_ACCOUNTS: dict[str, dict[str, dict[str, Any]]] = {
    exchange: {
        key: {"secret": a.secret, "passphrase": a.passphrase, "can_withdraw": a.can_withdraw}
        for key, a in accounts.items()
    }
    for exchange, accounts in _demo_accounts().items()
}


@dataclass
class VenueStats:
    """Counters of one venue. ``max_in_flight`` is the most requests the mock held at once."""

    requests: int = 0
    private_requests: int = 0
    valid_signatures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    paths: dict[str, int] = field(default_factory=dict)
    connections: set[tuple[str, int]] = field(default_factory=set)
    orders_created: int = 0  # orders the venue accepted (refused ones are not counted)
    orders_by_key: dict[str, int] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """Return the JSON form (``connections`` is the number of distinct client sockets seen)."""
        return {
            "requests": self.requests,
            "private_requests": self.private_requests,
            "valid_signatures": self.valid_signatures,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "paths": dict(self.paths),
            "connections": len(self.connections),
            "orders_created": self.orders_created,
            "orders_by_key": dict(self.orders_by_key),
        }


@dataclass
class MockState:
    """Accounts, prices, current behaviour and counters of one mock app."""

    accounts: dict[str, dict[str, MockAccount]] = field(default_factory=_demo_accounts)
    prices: dict[str, dict[str, Decimal]] = field(default_factory=lambda: copy.deepcopy(DEFAULT_PRICES))
    mode: str = "normal"
    delay_seconds: float = 2.0
    stats: dict[str, VenueStats] = field(default_factory=dict)
    orders: dict[str, dict[int, MockOrder]] = field(default_factory=dict)  # venue -> order id -> order
    faults: list[Fault] = field(default_factory=list)

    def venue_stats(self, exchange: str) -> VenueStats:
        """Return (creating) the counters of ``exchange``."""
        return self.stats.setdefault(exchange, VenueStats())

    def count(self, exchange: str, what: str) -> None:
        """Increment counter ``what`` (requests, private_requests, valid_signatures) for ``exchange``."""
        stats = self.venue_stats(exchange)
        setattr(stats, what, getattr(stats, what) + 1)

    def stats_document(self) -> dict[str, Any]:
        """Return per-venue counters plus totals of requests, private_requests, valid_signatures, orders_created."""
        doc: dict[str, Any] = {k: v.document() for k, v in self.stats.items()}
        for what in ("requests", "private_requests", "valid_signatures", "orders_created"):
            doc[what] = sum(getattr(v, what) for v in self.stats.values())
        return doc

    def markets(self, exchange: str) -> list[tuple[str, str]]:
        """Return the (base, quote) pairs listed on ``exchange``: defaults plus every priced symbol, sorted."""
        symbols = set(DEFAULT_MARKETS) | set(self.prices.get(exchange, {}))
        return sorted((base, quote) for base, quote in (s.split("/", 1) for s in symbols))

    def add_account(self, exchange: str, account: MockAccount) -> None:
        """Add or replace an account; it starts with the venue's default balances unless it has some, and no orders
        (a replaced key's orders are forgotten)."""
        if not account.balances:
            account.balances = copy.deepcopy(DEFAULT_BALANCES[exchange])
        self.accounts.setdefault(exchange, {})[account.api_key] = account
        book = self.orders.get(exchange, {})
        for order_id in [i for i, order in book.items() if order.api_key == account.api_key]:
            del book[order_id]


def decimal_of(value: Any) -> Decimal:
    """Return ``value`` (a decimal string or number) as a finite Decimal >= 0.

    Raises TypeError for other types, ValueError for other values.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError("not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError("must be a finite number >= 0")
    return number


def render(value: Decimal, places: int = 8) -> str:
    """Render like the venues do: fixed point with at least ``places`` decimals (more if the value has them)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -places:
        value = value.quantize(Decimal(1).scaleb(-places))
    return format(value, "f")


def plain(value: Decimal) -> str:
    """Render without trailing zeros (OKX style), e.g. ``0.5`` or ``50000``."""
    text = format(value.normalize(), "f")
    return text
