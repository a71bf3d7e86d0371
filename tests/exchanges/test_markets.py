"""3Commas market codes and connection forms, derived from the shipped catalogue (no ccxt, no network)."""

from __future__ import annotations

import pytest

from strongroom.errors import NotFound, ValidationFailed
from strongroom.exchanges.catalogue import get_catalogue
from strongroom.exchanges.markets import CODES, OTHER_SPELLINGS, Markets, field_name, markets, pair_of, symbol_of


@pytest.fixture(scope="module")
def codes() -> Markets:
    return markets(get_catalogue())


def test_every_3commas_code_names_a_catalogue_venue():
    catalogue = get_catalogue()
    missing = {code: exchange for code, exchange in CODES.items() if exchange not in catalogue}
    assert not missing, f"3Commas codes for venues the catalogue lacks: {missing}"
    assert len(set(CODES.values())) == len(CODES), "two codes for one venue"
    assert all(code in CODES for code in OTHER_SPELLINGS.values())


def test_every_venue_has_one_code_and_back(codes):
    catalogue = get_catalogue()
    all_markets = codes.all()
    assert len(all_markets) == len(catalogue) == len({m.code for m in all_markets})
    for market in all_markets:
        assert codes.by_code(market.code) is market
        assert codes.of_exchange(market.exchange) is market
        assert codes.by_code(market.exchange) is market  # a catalogue id is accepted too


@pytest.mark.parametrize(("code", "exchange"), [
    ("binance", "binance"), ("okex", "okx"), ("bybit", "bybit"), ("kucoin", "kucoin"), ("gate_io", "gate"),
    ("bitfinex", "bitfinex"), ("kraken", "kraken"), ("coinbase", "coinbase"), ("bitstamp", "bitstamp"),
    ("huobi", "htx"), ("binance_us", "binanceus"), ("binance_futures", "binanceusdm"),
    ("bybit_spot", "bybit"), ("coinbase_advanced", "coinbase"), ("OKEX", "okx"), (" gate_io ", "gate"),
])
def test_codes(codes, code, exchange):
    assert codes.by_code(code).exchange == exchange


def test_codes_out(codes):
    assert codes.of_exchange("okx").code == "okex"
    assert codes.of_exchange("gate").code == "gate_io"
    assert codes.of_exchange("binanceus").code == "binance_us"
    assert codes.of_exchange("htx").code == "huobi"
    assert codes.of_exchange("woo").code == "woo"  # no 3Commas code: the catalogue id
    assert codes.of_exchange("okx").pretty_display_type == "Okex"
    assert codes.of_exchange("binanceus").pretty_display_type == "BinanceUs"
    assert codes.of_exchange("okx").exchange_name("spot") == "OKX Spot"
    for bad in ("", "nowhere", "binance futures"):
        with pytest.raises(NotFound):
            codes.by_code(bad)
    with pytest.raises(NotFound):
        codes.of_exchange("nowhere")


def test_forms(codes):
    def form(code: str) -> tuple[list[str], list[str]]:
        market = codes.by_code(code)
        return [f.field for f in market.required], [f.field for f in market.optional]

    assert form("binance") == (["api_key", "secret"], [])
    assert form("okex") == (["api_key", "secret", "passphrase"], [])
    assert form("kucoin") == (["api_key", "secret", "passphrase"], [])
    assert form("hyperliquid") == (["address", "private_key"], [])
    assert form("coinmate") == (["api_key", "secret", "customer_id"], [])  # the catalogue's uid
    assert [f.localized_name for f in codes.by_code("okex").required] == ["API Key:", "API Secret:", "Passphrase:"]
    assert field_name("uid") == "customer_id" and field_name("secret") == "secret"


def test_credentials_from_form_fields(codes):
    catalogue = get_catalogue()
    coinmate = codes.by_code("coinmate")
    creds = coinmate.credentials({"api_key": "k", "secret": "s", "customer_id": "c", "name": "x", "type": "coinmate"})
    assert creds == {"api_key": "k", "secret": "s", "uid": "c"}
    assert catalogue.check_credentials(coinmate.info, creds) == creds
    binance = codes.by_code("binance")
    # a documented field the venue does not take is passed on, so the catalogue refuses it
    creds = binance.credentials({"api_key": "k", "secret": "s", "passphrase": "p", "customer_id": ""})
    assert creds == {"api_key": "k", "secret": "s", "passphrase": "p"}
    with pytest.raises(ValidationFailed) as refused:
        catalogue.check_credentials(binance.info, creds)
    assert refused.value.fields == {"passphrase": "unknown field"}


def test_pairs():
    assert pair_of("BTC/USDT") == "USDT_BTC"
    assert pair_of("BTC/USDT:USDT") is None and pair_of("BTCUSDT") is None
    assert symbol_of("USDT_BTC") == "BTC/USDT" and symbol_of("usdt_btc") == "BTC/USDT"
    assert symbol_of("USDT") is None and symbol_of("USDT_B/C") is None
