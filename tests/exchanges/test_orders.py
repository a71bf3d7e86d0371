"""Orders through the exchange gateway, over real HTTP against the loopback mock with real ccxt signing,
on Binance and OKX alike: placement, listing, fills by a price move and the balances they move, market
orders, cancels, lookups by client order id, the market's rules, insufficient funds, a lost answer (one
order on the venue, found again by its client order id), and no ccxt text in any error or log.

Every test uses a key of its own (``funded``): 1 BTC and 10,000 USDT free, BTC/USDT at 50,000.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from support.exchange_mock import Mock, run_with

from strongroom import errors
from strongroom.exchanges.catalogue import ExchangeInfo, get_catalogue
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.exchanges.orders import MarketRules, OrderSpec, OrderState
from strongroom.settings import Settings

CATALOGUE = get_catalogue()
VENUES = ("binance", "okx")
SYMBOL = "BTC/USDT"
D = Decimal


@pytest.fixture(params=VENUES)
def venue(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def info(venue: str) -> ExchangeInfo:
    return CATALOGUE.get(venue)


@pytest.fixture
def funded(mock: Mock, venue: str) -> Iterator[dict[str, str]]:
    """A fresh key with 1 BTC and 10,000 USDT free; prices and faults restored afterwards."""
    creds = mock.new_key(venue, balances={"BTC": {"free": "1"}, "USDT": {"free": "10000"}})
    mock.prices(venue, {SYMBOL: "50000"})
    yield creds
    mock.clear_faults()
    mock.prices(venue, {SYMBOL: "50000"})


def cid() -> str:
    return "t" + uuid.uuid4().hex[:20]


def limit(side: str, amount: str, price: str, client_order_id: str | None = None, **extra: Any) -> OrderSpec:
    return OrderSpec(SYMBOL, side, "limit", D(amount), D(price), client_order_id or cid(), **extra)


def market(side: str, amount: str) -> OrderSpec:
    return OrderSpec(SYMBOL, side, "market", D(amount), None, cid())


def balances(gateway: ExchangeGateway, info: ExchangeInfo, creds: dict[str, str]) -> Any:
    async def read() -> dict[str, tuple[Decimal, Decimal]]:
        found = await gateway.fetch_balance(info, creds, "spot")
        return {asset: (b.free, b.used) for asset, b in found.items()}
    return read()


# --------------------------------------------------------------------------- the life of an order


def test_a_limit_order_rests_is_listed_fills_on_a_price_move_and_moves_balances(
        mock: Mock, settings: Settings, venue: str, info: ExchangeInfo, funded: dict[str, str]) -> None:
    mock.reset()
    spec = limit("buy", "0.1", "49000")

    async def before_the_move(gateway: ExchangeGateway) -> tuple[OrderState, list[OrderState], list[OrderState],
                                                                  Any]:
        placed = await gateway.create_order(info, funded, spec)
        every = await gateway.fetch_open_orders(info, funded)
        on_symbol = await gateway.fetch_open_orders(info, funded, SYMBOL)
        return placed, every, on_symbol, await balances(gateway, info, funded)

    placed, every, on_symbol, wallet = run_with(settings, before_the_move)
    assert (placed.client_order_id, placed.symbol, placed.side, placed.type) == (spec.client_order_id, SYMBOL,
                                                                                "buy", "limit")
    assert (placed.status, placed.amount, placed.price, placed.filled, placed.average_price) == (
        "open", D("0.1"), D(49000), 0, None)
    assert placed.exchange_order_id and placed.timestamp is not None
    assert [o.exchange_order_id for o in every] == [o.exchange_order_id for o in on_symbol] == [
        placed.exchange_order_id]
    assert every[0].client_order_id == spec.client_order_id
    assert wallet == {"BTC": (D(1), 0), "USDT": (D(5100), D(4900))}  # 0.1 x 49,000 locked
    assert mock.orders_created(venue, funded["api_key"]) == 1

    assert mock.prices(venue, {SYMBOL: "48999"})["orders_filled"] == 1

    async def after_the_move(gateway: ExchangeGateway) -> tuple[OrderState | None, list[OrderState],
                                                                 list[OrderState], Any]:
        found = await gateway.fetch_order(info, funded, SYMBOL, exchange_order_id=placed.exchange_order_id)
        return (found, await gateway.fetch_open_orders(info, funded), await gateway.fetch_closed_orders(
            info, funded, SYMBOL), await balances(gateway, info, funded))

    filled, still_open, closed, wallet = run_with(settings, after_the_move)
    assert filled is not None
    assert (filled.status, filled.filled, filled.average_price) == ("closed", D("0.1"), D(49000))
    if venue == "okx":  # OKX reports an order's fee; Binance only in the placement's fills
        assert filled.fees == (("BTC", D("0.0001")),)
    assert still_open == []
    assert [(o.exchange_order_id, o.status) for o in closed] == [(placed.exchange_order_id, "closed")]
    # the buyer received 0.1 BTC less the 0.1 % fee, and paid 4,900 USDT at its limit price
    assert wallet == {"BTC": (D("1.0999"), 0), "USDT": (D(5100), 0)}


def test_a_market_order_fills_at_the_mock_price(mock: Mock, settings: Settings, venue: str, info: ExchangeInfo,
                                                funded: dict[str, str]) -> None:
    async def body(gateway: ExchangeGateway) -> tuple[OrderState, Any]:
        return await gateway.create_order(info, funded, market("sell", "0.2")), await balances(gateway, info, funded)

    sold, wallet = run_with(settings, body)
    assert (sold.status, sold.type, sold.side, sold.filled, sold.average_price) == ("closed", "market", "sell",
                                                                                 D("0.2"), D(50000))
    assert sold.price is None  # a market order has no limit price (Binance's ccxt order puts the fill price there)
    assert sold.fees == (("USDT", D(10)),)  # 0.1 % of 10,000 USDT, as the venue reports it
    assert wallet == {"BTC": (D("0.8"), 0), "USDT": (D(19990), 0)}


def test_cancel_and_cancel_all(mock: Mock, settings: Settings, venue: str, info: ExchangeInfo,
                               funded: dict[str, str]) -> None:
    specs = [limit("buy", "0.01", "40000"), limit("buy", "0.02", "41000"), limit("sell", "0.03", "60000")]

    async def body(gateway: ExchangeGateway) -> tuple[OrderState, OrderState, list[OrderState], list[OrderState],
                                                       Any, list[OrderState]]:
        placed = [await gateway.create_order(info, funded, spec) for spec in specs]
        first = await gateway.cancel_order(info, funded, SYMBOL, placed[0].exchange_order_id)
        again = await gateway.cancel_order(info, funded, SYMBOL, placed[0].exchange_order_id)  # closed already
        rest = await gateway.cancel_all_orders(info, funded)  # every open order, one cancel each
        return (first, again, rest, await gateway.fetch_open_orders(info, funded),
                await balances(gateway, info, funded), await gateway.fetch_closed_orders(info, funded, SYMBOL))

    first, again, rest, still_open, wallet, closed = run_with(settings, body)
    assert (first.status, first.client_order_id, first.filled) == ("canceled", specs[0].client_order_id, 0)
    assert (again.status, again.exchange_order_id) == ("canceled", first.exchange_order_id)
    assert sorted((o.client_order_id, o.status) for o in rest) == sorted(
        (s.client_order_id, "canceled") for s in specs[1:])
    assert still_open == []
    assert wallet == {"BTC": (D(1), 0), "USDT": (D(10000), 0)}  # every lock released
    assert {o["status"] for o in mock.orders(venue, funded["api_key"])} == {"canceled"}
    assert sorted((o.client_order_id, o.status) for o in closed) == sorted(
        (s.client_order_id, "canceled") for s in specs)  # canceled orders are closed ones too, on both venues


def test_cancelling_an_order_the_venue_does_not_know_is_not_found(mock: Mock, settings: Settings,
                                                                  info: ExchangeInfo, funded: dict[str, str]) -> None:
    with pytest.raises(errors.NotFound):
        run_with(settings, lambda g: g.cancel_order(info, funded, SYMBOL, "424242"))


def test_an_order_is_found_by_its_client_order_id(mock: Mock, settings: Settings, info: ExchangeInfo,
                                                  funded: dict[str, str]) -> None:
    spec = limit("sell", "0.5", "55000")

    async def body(gateway: ExchangeGateway) -> tuple[OrderState, OrderState | None, OrderState | None]:
        placed = await gateway.create_order(info, funded, spec)
        found = await gateway.fetch_order(info, funded, SYMBOL, client_order_id=spec.client_order_id)
        unknown = await gateway.fetch_order(info, funded, SYMBOL, client_order_id=cid())
        return placed, found, unknown

    placed, found, unknown = run_with(settings, body)
    assert found is not None and unknown is None
    assert (found.exchange_order_id, found.client_order_id, found.status, found.amount, found.price) == (
        placed.exchange_order_id, spec.client_order_id, "open", D("0.5"), D(55000))
    with pytest.raises(errors.ValidationFailed):
        run_with(settings, lambda g: g.fetch_order(info, funded, SYMBOL))


# --------------------------------------------------------------------------- refusals


def test_insufficient_balance_is_insufficient_funds_and_places_nothing(
        mock: Mock, settings: Settings, venue: str, info: ExchangeInfo, funded: dict[str, str]) -> None:
    mock.reset()
    with pytest.raises(errors.InsufficientFunds) as short:
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "1", "20000")))  # 20,000 > 10,000
    mock.fault(venue, "insufficient_balance")  # the venue says so whatever the balance
    with pytest.raises(errors.InsufficientFunds) as forced:
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "40000")))
    for caught in (short, forced):
        assert (caught.value.status, caught.value.code) == (400, "insufficient_funds")
        assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert mock.orders_created(venue, funded["api_key"]) == 0
    assert mock.orders(venue, funded["api_key"]) == []


@pytest.mark.parametrize("how", [{"status": 503}, {"status": 502}, {"delay_seconds": 1.5}],
                         ids=["503", "502", "timeout"])
def test_a_lost_answer_is_outcome_unknown_and_the_order_exists_once(
        mock: Mock, venue: str, info: ExchangeInfo, funded: dict[str, str], how: dict[str, Any]) -> None:
    settings = Settings(exchange_base_urls={venue: mock.url}, exchange_timeout_ms=700,
                        exchange_requests_per_second=1000)
    mock.reset()
    mock.fault(venue, "lost_answer", **how)
    spec = limit("buy", "0.01", "40000")
    with pytest.raises(errors.OrderOutcomeUnknown) as caught:
        run_with(settings, lambda g: g.create_order(info, funded, spec))
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == ("order_outcome_unknown", 504, 5)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert mock.orders_created(venue, funded["api_key"]) == 1  # the venue accepted it, once
    found = run_with(settings, lambda g: g.fetch_order(info, funded, SYMBOL, client_order_id=spec.client_order_id))
    assert found is not None and (found.client_order_id, found.status) == (spec.client_order_id, "open")
    assert [o["client_order_id"] for o in mock.orders(venue, funded["api_key"])] == [spec.client_order_id]


def test_okx_placed_but_not_read_back_is_the_order_as_sent(mock: Mock, settings: Settings) -> None:
    """OKX answers a placement with ids only; when reading the order back fails, the placement still succeeded."""
    info = CATALOGUE.get("okx")
    funded = mock.new_key("okx", balances={"USDT": {"free": "10000"}})
    mock.fault("okx", "read_unavailable")
    spec = limit("buy", "0.01", "40000")
    placed = run_with(settings, lambda g: g.create_order(info, funded, spec))
    assert (placed.client_order_id, placed.status, placed.amount, placed.price, placed.filled) == (
        spec.client_order_id, "open", D("0.01"), D(40000), 0)
    assert placed.exchange_order_id == mock.orders("okx", funded["api_key"])[0]["order_id"]
    mock.fault("okx", "read_unavailable")  # and a cancel whose read-back fails is still a cancel
    canceled = run_with(settings, lambda g: g.cancel_order(info, funded, SYMBOL, placed.exchange_order_id))
    assert (canceled.exchange_order_id, canceled.status) == (placed.exchange_order_id, "canceled")
    assert mock.orders("okx", funded["api_key"])[0]["status"] == "canceled"


def test_a_duplicate_client_order_id_is_refused_by_the_venue(mock: Mock, settings: Settings, venue: str,
                                                             info: ExchangeInfo, funded: dict[str, str]) -> None:
    mock.reset()
    spec = limit("buy", "0.01", "40000")
    run_with(settings, lambda g: g.create_order(info, funded, spec))
    with pytest.raises(errors.OrderRejected) as caught:
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.02", "41000", spec.client_order_id)))
    assert (caught.value.status, caught.value.code) == (400, "order_rejected")
    assert mock.orders_created(venue, funded["api_key"]) == 1


def test_concurrent_placements_with_one_client_order_id_make_one_order(
        mock: Mock, settings: Settings, venue: str, info: ExchangeInfo, funded: dict[str, str]) -> None:
    mock.reset()
    spec = limit("buy", "0.01", "40000")

    async def body(gateway: ExchangeGateway) -> list[OrderState | BaseException]:
        return list(await asyncio.gather(*(gateway.create_order(info, funded, spec) for _ in range(10)),
                                         return_exceptions=True))

    outcomes = run_with(settings, body)
    placed = [o for o in outcomes if isinstance(o, OrderState)]
    assert len(placed) == 1 and placed[0].client_order_id == spec.client_order_id
    assert all(isinstance(o, errors.OrderRejected) for o in outcomes if o not in placed)
    assert mock.orders_created(venue, funded["api_key"]) == 1
    assert len(mock.orders(venue, funded["api_key"])) == 1


def test_a_post_only_order_that_would_take_is_rejected(mock: Mock, settings: Settings, venue: str,
                                                       info: ExchangeInfo, funded: dict[str, str]) -> None:
    with pytest.raises(errors.OrderRejected):
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "51000", post_only=True)))
    placed = run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "49000", post_only=True)))
    assert placed.status == "open"
    assert mock.orders_created(venue, funded["api_key"]) == 1


def test_an_ioc_order_that_cannot_fill_expires(mock: Mock, settings: Settings, venue: str, info: ExchangeInfo,
                                               funded: dict[str, str]) -> None:
    placed = run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "40000",
                                                                             time_in_force="IOC")))
    # Binance says EXPIRED; OKX cancels an IOC order it cannot fill
    assert placed.status == ("expired" if venue == "binance" else "canceled") and placed.filled == 0


@pytest.mark.parametrize(("spec", "field", "message"), [
    (limit("buy", "0.000001", "40000"), "amount", "multiple of 0.00001"),
    (limit("buy", "0.123456", "40000"), "amount", "multiple of 0.00001"),
    (limit("buy", "0.01", "40000.001"), "price", "multiple of 0.01"),
    (OrderSpec("NOPE/USDT", "buy", "limit", D("1"), D("1"), "x1"), "symbol", "not a market"),
    (OrderSpec(SYMBOL, "hold", "limit", D("1"), D("1"), "x1"), "side", "buy or sell"),
    (OrderSpec(SYMBOL, "buy", "limit", D("1"), None, "x1"), "price", "limit orders"),
    (OrderSpec(SYMBOL, "buy", "market", D("-1"), None, "x1"), "amount", "positive"),
    (OrderSpec(SYMBOL, "buy", "stop", D("1"), D("1"), "x1"), "type", "limit or market"),
    (OrderSpec(SYMBOL, "buy", "limit", D("1"), D("1"), "x" * 40), "client_order_id", "1 to 3"),
], ids=["below-step", "off-step", "off-tick", "unknown-symbol", "side", "no-price", "negative", "type", "long-id"])
def test_orders_the_rules_refuse_are_never_sent(mock: Mock, settings: Settings, venue: str, info: ExchangeInfo,
                                                funded: dict[str, str], spec: OrderSpec, field: str,
                                                message: str) -> None:
    mock.reset()
    with pytest.raises(errors.ValidationFailed) as caught:
        run_with(settings, lambda g: g.create_order(info, funded, spec))
    assert message in caught.value.fields[field]
    assert mock.venue(venue).get("paths", {}).get("/api/v3/order" if venue == "binance" else "/api/v5/trade/order",
                                                   0) == 0


def test_the_minimum_notional_is_named_and_okx_client_ids_are_alphanumeric(
        mock: Mock, settings: Settings, venue: str, info: ExchangeInfo, funded: dict[str, str]) -> None:
    if venue == "binance":  # 0.0001 x 40,000 = 4 USDT < 5
        with pytest.raises(errors.ValidationFailed) as caught:
            run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.0001", "40000")))
        assert caught.value.fields == {"amount": "amount x price must be at least 5 USDT"}
    else:
        with pytest.raises(errors.ValidationFailed) as caught:
            run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "40000", "has-a-dash")))
        assert caught.value.fields == {"client_order_id": "1 to 32 letters or digits"}
    assert mock.orders_created(venue, funded["api_key"]) == 0


def test_market_rules_come_from_the_venues_markets(mock: Mock, settings: Settings, venue: str,
                                                   info: ExchangeInfo) -> None:
    rules = run_with(settings, lambda g: g.market_rules(info, SYMBOL))
    assert rules == MarketRules(SYMBOL, "BTC", "USDT", amount_step=D("0.00001"), price_step=D("0.01"),
                                min_amount=D("0.00001"), min_cost=D(5) if venue == "binance" else None)
    eth_btc = run_with(settings, lambda g: g.market_rules(info, "ETH/BTC"))
    assert (eth_btc.amount_step, eth_btc.price_step, eth_btc.min_amount) == (D("0.001"), D("0.00001"), D("0.001"))
    with pytest.raises(errors.ValidationFailed) as caught:
        run_with(settings, lambda g: g.market_rules(info, "NOPE/USDT"))
    assert caught.value.fields == {"symbol": "not a market of this exchange"}


def test_venues_without_trading_say_so_without_a_network_call(mock: Mock, settings: Settings) -> None:
    mock.reset()
    creds = {"api_key": "k", "secret": "s"}
    spec = limit("buy", "0.01", "40000")
    with pytest.raises(errors.NotSupported, match="trading on Binance US is not supported"):
        run_with(settings, lambda g: g.create_order(CATALOGUE.get("binanceus"), creds, spec))
    with pytest.raises(errors.ExchangeNotSupported):
        run_with(settings, lambda g: g.fetch_open_orders(CATALOGUE.get("CONCURRENCY.COM"), creds))
    gateway = ExchangeGateway(settings)
    assert [gateway.supports_trading(CATALOGUE.get(n)) for n in ("binance", "okx", "okxus", "binanceus", "bitmex")
            ] == [True, True, True, False, False]
    assert mock.stats()["requests"] == 0


def test_the_venue_is_down_for_a_read_is_unavailable(mock: Mock, settings: Settings, venue: str,
                                                     info: ExchangeInfo, funded: dict[str, str]) -> None:
    mock.mode("down")  # a fresh gateway cannot even load the markets: nothing was sent, the outcome is known
    with pytest.raises(errors.ExchangeUnavailable) as down:
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "40000")))
    assert down.value.retry_after == 5
    assert mock.orders_created(venue, funded["api_key"]) == 0
    with pytest.raises(errors.ExchangeUnavailable):
        run_with(settings, lambda g: g.fetch_open_orders(info, funded, SYMBOL))
    mock.mode("rate_limited")  # refused before anything was placed: not an unknown outcome
    with pytest.raises(errors.ExchangeUnavailable) as caught:
        run_with(settings, lambda g: g.create_order(info, funded, limit("buy", "0.01", "40000")))
    assert caught.value.retry_after == 30


# --------------------------------------------------------------------------- nothing leaks

SIGNATURES = (re.compile(r"[0-9a-f]{64}"), re.compile(r"[A-Za-z0-9+/]{43}="))  # Binance hex, OKX base64


def test_no_ccxt_text_secret_or_signature_in_errors_or_logs(
        mock: Mock, venue: str, info: ExchangeInfo, funded: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(exchange_base_urls={venue: mock.url}, exchange_timeout_ms=700,
                        exchange_requests_per_second=1000)
    caplog.set_level(logging.DEBUG)  # every logger at DEBUG, as an operator may set it
    caplog.set_level(logging.DEBUG, logger="strongroom")
    raised: list[errors.DomainError] = []

    def expect(call: Any) -> None:
        try:
            run_with(settings, call)
        except errors.DomainError as exc:
            raised.append(exc)
        else:
            raise AssertionError("no error")

    spec = limit("buy", "0.01", "40000")
    expect(lambda g: g.create_order(info, funded, limit("buy", "1", "20000")))  # insufficient funds
    mock.fault(venue, "lost_answer")
    expect(lambda g: g.create_order(info, funded, spec))  # lost answer
    expect(lambda g: g.create_order(info, funded, limit("buy", "0.02", "41000", spec.client_order_id)))  # duplicate
    expect(lambda g: g.cancel_order(info, funded, SYMBOL, "1"))  # unknown order
    expect(lambda g: g.create_order(info, {**funded, "secret": funded["secret"][::-1]}, spec))  # bad secret
    assert [type(e).__name__ for e in raised] == ["InsufficientFunds", "OrderOutcomeUnknown", "OrderRejected",
                                                  "NotFound", "InvalidCredentials"]
    texts = [text for e in raised for text in (str(e), repr(e), e.message, json.dumps(e.fields))]
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # the test's own calls
    assert any(r.name == "strongroom.exchanges" for r in records)
    texts += [record.getMessage() for record in records]
    texts += [str(record.exc_info) for record in records if record.exc_info]
    for text in texts:
        for leak in (funded["secret"], funded["secret"][::-1], funded["api_key"], funded.get("passphrase", "\0"),
                     "signature", "OK-ACCESS", mock.url, "127.0.0.1", "/api/", "-2010", "51016", "insufficient balance"):
            assert leak not in text, (leak, text)
        for pattern in SIGNATURES:
            assert not pattern.search(text), text
    assert all(e.__cause__ is None and e.__context__ is None for e in raised)
