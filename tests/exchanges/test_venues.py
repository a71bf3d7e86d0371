"""Venue classes: the registry by catalogue id, and the venue-specific and generic parsing (no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from strongroom import errors
from strongroom.exchanges.catalogue import Catalogue, get_catalogue
from strongroom.exchanges.outcomes import AssetBalance
from strongroom.exchanges.venues import REGISTRY, BinanceVenue, OkxVenue, Venue, venue_for
from strongroom.exchanges.venues.base import to_decimal


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return get_catalogue()


@pytest.mark.parametrize(
    ("name", "cls"),
    [("binance", BinanceVenue), ("BINANCE", BinanceVenue), ("okx", OkxVenue), ("okex", OkxVenue),
     ("OKEX", OkxVenue), ("myokx", OkxVenue), ("okxus", OkxVenue), ("kraken", Venue), ("binanceus", Venue)],
)
def test_registry_picks_the_venue_subclass_by_catalogue_id(catalogue: Catalogue, name: str, cls: type) -> None:
    venue = venue_for(catalogue.get(name))
    assert type(venue) is cls
    assert venue is not None and venue.info is catalogue.get(name)


@pytest.mark.parametrize("name", ["bitmex", "CONCURRENCY.COM"])
def test_venues_without_live_support_have_no_venue(catalogue: Catalogue, name: str) -> None:
    assert venue_for(catalogue.get(name)) is None


def test_every_registered_id_is_a_catalogue_venue(catalogue: Catalogue) -> None:
    assert set(REGISTRY) == {"binance", "okx", "myokx", "okxus"}
    for venue_id in REGISTRY:
        assert catalogue.get(venue_id).id == venue_id


def test_venue_quirks_are_declared_not_branched() -> None:
    assert (BinanceVenue.probe_requests, BinanceVenue.probe_needs_markets) == (2, False)
    assert (OkxVenue.probe_requests, OkxVenue.probe_needs_markets) == (1, False)
    assert (Venue.probe_requests, Venue.probe_needs_markets) == (1, True)  # generic probe: fetch_balance


def test_balance_params_follow_the_account_type(catalogue: Catalogue) -> None:
    binance = venue_for(catalogue.get("binance"))
    assert binance is not None
    for account_type in ("spot", "margin", "swap", "future"):
        assert binance.balance_params(account_type) == {"type": account_type}
    okx = venue_for(catalogue.get("okx"))
    assert okx is not None and okx.balance_params("spot") == {"type": "spot"}
    with pytest.raises(errors.ValidationFailed) as caught:
        venue_for(catalogue.get("okxus")).balance_params("swap")  # type: ignore[union-attr]
    assert caught.value.fields == {"account_type": "one of spot"}


def test_parse_balance_reads_ccxt_strings_exactly(catalogue: Catalogue) -> None:
    venue = venue_for(catalogue.get("kraken"))
    assert venue is not None
    unified = {
        "info": {"raw": "ignored"},
        "timestamp": None,
        "datetime": None,
        "BTC": {"free": "0.50000000", "used": "0.10000000", "total": "0.6"},
        "ETH": {"free": "0.123456789123456789", "used": None, "total": "1.123456789123456789"},
        "USDT": {"free": "1200", "used": "0", "total": None},
        "DOGE": {"free": "0", "used": "0", "total": "0"},
        "free": {"BTC": "0.5"},
        "used": {},
        "total": {},
        "debt": {},
    }
    parsed = venue.parse_balance(unified)
    assert list(parsed) == ["BTC", "ETH", "USDT"]  # sorted, the empty DOGE left out
    assert parsed["BTC"] == AssetBalance(Decimal("0.5"), Decimal("0.1"), Decimal("0.6"))
    assert parsed["ETH"] == AssetBalance(Decimal("0.123456789123456789"), Decimal(1), Decimal("1.123456789123456789"))
    assert str(parsed["ETH"].free) == "0.123456789123456789"
    assert parsed["USDT"] == AssetBalance(Decimal(1200), Decimal(0), Decimal(1200))


def test_ticker_price_and_decimals(catalogue: Catalogue) -> None:
    venue = venue_for(catalogue.get("binance"))
    assert venue is not None
    assert venue.ticker_price({"last": "50000.00000000", "close": "1"}) == Decimal(50000)
    assert venue.ticker_price({"last": None, "close": "0.06"}) == Decimal("0.06")
    assert venue.ticker_price({"last": None, "close": None}) is None
    assert to_decimal(0.1) == Decimal("0.1")  # from str(float), never the float's binary expansion
    assert to_decimal("1e3") == Decimal(1000)
    for bad in (None, "", "  ", "abc", "NaN", "Infinity", True):
        assert to_decimal(bad) is None
