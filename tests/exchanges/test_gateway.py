"""The exchange gateway against the loopback mock: key checks, client reuse, per-venue bounds,
balances and prices as exact decimals, the shared price cache, and no ccxt text in errors or logs.

Every test makes a fresh gateway on a fresh event loop (``run_with``) and counts at the mock.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import anyio.to_thread
import pytest
from support import LOGS, install_log_capture
from support.exchange_mock import BINANCE, BINANCE_WITHDRAW, OKX, Mock, run_with

from strongroom import errors
from strongroom.exchanges.catalogue import get_catalogue
from strongroom.exchanges.client import RETRY_AFTER_RATE_LIMITED, RETRY_AFTER_TRANSIENT
from strongroom.exchanges.gateway import ExchangeGateway
from strongroom.exchanges.outcomes import AssetBalance, ValidationOutcome
from strongroom.settings import Settings

CATALOGUE = get_catalogue()
BINANCE_INFO = CATALOGUE.get("binance")
OKX_INFO = CATALOGUE.get("okx")


def validate(settings: Settings, name: str, creds: dict[str, str]) -> ValidationOutcome:
    return run_with(settings, lambda g: g.validate(CATALOGUE.get(name), creds))


# --------------------------------------------------------------------------- validate


def test_binance_valid_key_is_verified_with_two_signed_requests(mock: Mock, settings: Settings) -> None:
    mock.reset()
    assert validate(settings, "BINANCE", BINANCE) == ValidationOutcome(verified=True, can_withdraw=False)
    venue = mock.venue("binance")
    # exactly the account call and the apiRestrictions call, both correctly signed; no market load
    assert venue["paths"] == {"/api/v3/account": 1, "/sapi/v1/account/apiRestrictions": 1}
    assert venue["valid_signatures"] == 2


def test_withdrawal_keys_are_reported(mock: Mock, settings: Settings) -> None:
    assert validate(settings, "binance", BINANCE_WITHDRAW) == ValidationOutcome(True, True)
    okx_withdraw = mock.new_key("okx", can_withdraw=True)
    assert validate(settings, "okx", okx_withdraw) == ValidationOutcome(True, True)


def test_okx_valid_key_is_verified(mock: Mock, settings: Settings) -> None:
    mock.reset()
    assert validate(settings, "okex", OKX) == ValidationOutcome(verified=True, can_withdraw=False)
    assert mock.venue("okx")["paths"] == {"/api/v5/account/config": 1}
    assert mock.venue("okx")["valid_signatures"] == 1


@pytest.mark.parametrize(
    ("name", "creds"),
    [
        ("binance", {"api_key": BINANCE["api_key"], "secret": "wrong-secret"}),
        ("binance", {"api_key": "who-is-this", "secret": "x"}),
        ("okx", {**OKX, "passphrase": "wrong-passphrase"}),
        ("okx", {**OKX, "secret": "wrong-secret"}),
        ("okx", {**OKX, "api_key": "unknown-okx-key"}),
    ],
    ids=["binance-wrong-secret", "binance-unknown-key", "okx-wrong-passphrase", "okx-wrong-secret",
         "okx-unknown-key"],
)
def test_rejected_credentials_are_invalid_and_leak_nothing(mock: Mock, settings: Settings, name: str,
                                                           creds: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidCredentials) as caught:
        validate(settings, name, creds)
    err = caught.value
    for text in (err.message, str(err), repr(err), json.dumps(err.fields), json.dumps(err.details)):
        for leak in ("wrong", "signature", "OK-ACCESS", "-1022", "50113", mock.url, "127.0.0.1", "/api/"):
            assert leak not in text
    assert err.__cause__ is None and err.__context__ is None


def test_a_rejected_key_is_not_kept_in_the_pool(mock: Mock, settings: Settings) -> None:
    async def body(gateway: ExchangeGateway) -> int:
        with pytest.raises(errors.InvalidCredentials):
            await gateway.validate(BINANCE_INFO, {"api_key": BINANCE["api_key"], "secret": "nope"})
        return gateway.pooled_clients

    assert run_with(settings, body) == 0


def test_down_is_unavailable_with_a_short_retry_after(mock: Mock, settings: Settings) -> None:
    mock.mode("down")
    for name, creds in (("binance", BINANCE), ("okx", OKX)):
        with pytest.raises(errors.ExchangeUnavailable) as caught:
            validate(settings, name, creds)
        assert caught.value.retry_after == RETRY_AFTER_TRANSIENT
        assert "127.0.0.1" not in str(caught.value)


def test_rate_limited_is_unavailable_with_a_longer_retry_after(mock: Mock, settings: Settings) -> None:
    mock.mode("rate_limited")
    for name, creds in (("binance", BINANCE), ("okx", OKX)):
        with pytest.raises(errors.ExchangeUnavailable) as caught:
            validate(settings, name, creds)
        assert caught.value.retry_after == RETRY_AFTER_RATE_LIMITED > RETRY_AFTER_TRANSIENT


def test_slow_exchange_times_out_as_unavailable(mock: Mock) -> None:
    mock.mode("slow", delay=2.0)
    fast = Settings(exchange_base_urls={"binance": mock.url}, exchange_timeout_ms=300)
    with pytest.raises(errors.ExchangeUnavailable) as caught:
        validate(fast, "binance", BINANCE)
    assert caught.value.retry_after == RETRY_AFTER_TRANSIENT


def test_unreachable_exchange_is_unavailable() -> None:
    dead = Settings(exchange_base_urls={"binance": "http://127.0.0.1:9"}, exchange_timeout_ms=1000)
    with pytest.raises(errors.ExchangeUnavailable) as caught:
        validate(dead, "binance", BINANCE)
    assert caught.value.retry_after == RETRY_AFTER_TRANSIENT


def test_generic_venue_checks_a_real_signature_through_fetch_balance(mock: Mock, settings: Settings) -> None:
    """binanceus has no subclass: the base class's fetch_balance must reach the mock's account call."""
    creds = mock.new_key("binance")
    mock.reset()
    assert validate(settings, "binanceus", creds) == ValidationOutcome(True, None)
    venue = mock.venue("binance")
    assert venue["paths"]["/api/v3/account"] == 1 and venue["valid_signatures"] >= 1
    assert venue["paths"]["/api/v3/exchangeInfo"] == 1  # markets, loaded once by the venue's public client
    with pytest.raises(errors.InvalidCredentials):
        validate(settings, "binanceus", {**creds, "secret": "nope"})


@pytest.mark.parametrize("name", ["bitmex", "CONCURRENCY.COM"])
def test_venue_without_live_support_is_unverified_without_network(mock: Mock, settings: Settings, name: str) -> None:
    before = mock.stats()["requests"]
    assert validate(settings, name, {"api_key": "k", "secret": "s"}) == ValidationOutcome(False, None)
    assert mock.stats()["requests"] == before


def test_unknown_fields_never_reach_ccxt(mock: Mock, settings: Settings) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        validate(settings, "binance", {**BINANCE, "hostname": "evil.example"})
    assert caught.value.fields == {"hostname": "unknown field"}


# --------------------------------------------------------------------------- pool and bounds


def test_one_client_per_key_is_reused_with_its_connection(mock: Mock, settings: Settings) -> None:
    creds = mock.new_key("binance")
    mock.reset()

    async def body(gateway: ExchangeGateway) -> tuple[int, int]:
        for _ in range(3):
            assert await gateway.validate(BINANCE_INFO, creds) == ValidationOutcome(True, False)
        await gateway.validate(BINANCE_INFO, BINANCE)  # another key: another client
        return gateway.clients_built, gateway.pooled_clients

    assert run_with(settings, body) == (2, 2)
    venue = mock.venue("binance")
    assert venue["requests"] == 8
    assert venue["connections"] == 2  # one keep-alive connection per client, reused by every call on it


def test_at_most_n_live_calls_per_venue(mock: Mock, mock_settings_bounded: Settings) -> None:
    keys = [mock.new_key("binance") for _ in range(6)]
    mock.mode("slow", delay=0.3)
    mock.reset()

    async def body(gateway: ExchangeGateway) -> list[ValidationOutcome]:
        return list(await asyncio.gather(*(gateway.validate(BINANCE_INFO, k) for k in keys)))

    outcomes = run_with(mock_settings_bounded, body)
    assert outcomes == [ValidationOutcome(True, False)] * 6
    venue = mock.venue("binance")
    assert venue["requests"] == 12
    assert venue["max_in_flight"] == 2  # bounded by the setting, and the calls did overlap up to it


@pytest.fixture
def mock_settings_bounded(mock: Mock) -> Settings:
    return Settings(exchange_base_urls={"binance": mock.url, "okx": mock.url}, exchange_timeout_ms=5000,
                    exchange_concurrency_per_venue=2, exchange_requests_per_second=1000)


def test_the_venue_request_budget_is_the_gateways(mock: Mock) -> None:
    """0.5 requests/s: a burst of 4 (two Binance key checks), then the third waits past the timeout."""
    stingy = Settings(exchange_base_urls={"binance": mock.url}, exchange_requests_per_second=0.5,
                      exchange_timeout_ms=200)
    mock.reset()

    async def body(gateway: ExchangeGateway) -> int | None:
        assert await gateway.validate(BINANCE_INFO, BINANCE) == ValidationOutcome(True, False)
        assert await gateway.validate(BINANCE_INFO, BINANCE_WITHDRAW) == ValidationOutcome(True, True)
        with pytest.raises(errors.ExchangeUnavailable) as caught:
            await gateway.validate(BINANCE_INFO, BINANCE)
        return caught.value.retry_after

    assert run_with(stingy, body) == RETRY_AFTER_RATE_LIMITED
    assert mock.venue("binance")["requests"] == 4  # the refused check never reached the venue


def test_no_worker_thread_is_held_during_an_exchange_call(mock: Mock, settings: Settings) -> None:
    creds = mock.new_key("binance")
    mock.mode("slow", delay=0.5)

    async def body(gateway: ExchangeGateway) -> tuple[int, ValidationOutcome]:
        await gateway.validate(BINANCE_INFO, BINANCE)  # ccxt imported, one client built: warm
        task = asyncio.create_task(gateway.validate(BINANCE_INFO, creds))
        while mock.server.state.venue_stats("binance").in_flight == 0:  # the call is at the exchange now
            await asyncio.sleep(0.01)
        borrowed = anyio.to_thread.current_default_thread_limiter().borrowed_tokens
        return borrowed, await task

    borrowed, outcome = run_with(settings, body)
    assert borrowed == 0
    assert outcome == ValidationOutcome(True, False)


def test_evicted_clients_are_closed_in_the_background(mock: Mock) -> None:
    short = Settings(exchange_base_urls={"binance": mock.url}, exchange_client_ttl_seconds=1,
                     exchange_requests_per_second=1000)

    async def body(gateway: ExchangeGateway) -> tuple[bool, bool, int]:
        await gateway.validate(BINANCE_INFO, BINANCE)
        state = gateway._state
        assert state is not None
        (client,) = [state.clients[k] for k in list(state.clients)]
        open_before = client.exchange.session is not None
        await asyncio.sleep(1.2)  # past the client TTL
        pooled = gateway.pooled_clients  # expires it: its close is scheduled
        await asyncio.sleep(0.05)
        return open_before, client.exchange.session is None, pooled

    assert run_with(short, body) == (True, True, 0)


def test_aclose_closes_every_client_and_the_gateway_stays_usable(mock: Mock, settings: Settings) -> None:
    async def body(gateway: ExchangeGateway) -> tuple[bool, int, ValidationOutcome]:
        await gateway.validate(BINANCE_INFO, BINANCE)
        await gateway.validate(OKX_INFO, OKX)
        state = gateway._state
        assert state is not None
        exchanges = [state.clients[k].exchange for k in list(state.clients)]
        await gateway.aclose()
        closed = all(e.session is None for e in exchanges) and len(exchanges) == 2
        return closed, gateway.pooled_clients, await gateway.validate(BINANCE_INFO, BINANCE)

    assert run_with(settings, body) == (True, 0, ValidationOutcome(True, False))


def test_a_gateway_used_from_a_new_event_loop_starts_afresh(mock: Mock, settings: Settings) -> None:
    """E.g. a command that runs ``asyncio.run`` twice on one core: each loop gets its own clients."""
    gateway = ExchangeGateway(settings)

    async def once() -> ValidationOutcome:
        try:
            return await gateway.validate(BINANCE_INFO, BINANCE)
        finally:
            await gateway.aclose()

    assert asyncio.run(once()) == asyncio.run(once()) == ValidationOutcome(True, False)
    assert gateway.clients_built == 2


# --------------------------------------------------------------------------- balances


def test_binance_spot_balance_is_exact(mock: Mock, settings: Settings) -> None:
    balances = run_with(settings, lambda g: g.fetch_balance(BINANCE_INFO, BINANCE, "spot"))
    assert balances == {
        "BTC": AssetBalance(free=Decimal("0.5"), used=Decimal("0.1"), total=Decimal("0.6")),
        "USDT": AssetBalance(free=Decimal(1200), used=Decimal(0), total=Decimal(1200)),
    }
    assert all(isinstance(v, Decimal) for b in balances.values() for v in (b.free, b.used, b.total))


def test_balances_set_through_the_control_endpoint_come_back_exactly(mock: Mock, settings: Settings) -> None:
    creds = mock.new_key("binance")
    mock.post("/_mock/balances", {"exchange": "binance", "api_key": creds["api_key"],
                                  "balances": {"ETH": {"free": "1.123456789", "used": "0.000000001"},
                                               "BTC": {"free": "0.00000001"}}})
    mock.post("/_mock/balances", {"exchange": "binance", "api_key": creds["api_key"], "account_type": "futures",
                                  "balances": {"USDT": {"free": "10.5", "used": "2.25"}}})

    async def body(gateway: ExchangeGateway) -> tuple:
        spot = await gateway.fetch_balance(BINANCE_INFO, creds, "spot")
        swap = await gateway.fetch_balance(BINANCE_INFO, creds, "swap")
        future = await gateway.fetch_balance(BINANCE_INFO, creds, "future")
        margin = await gateway.fetch_balance(BINANCE_INFO, creds, "margin")
        return spot, swap, future, margin

    spot, swap, future, margin = run_with(settings, body)
    assert spot == {"BTC": AssetBalance(Decimal("0.00000001"), Decimal(0), Decimal("0.00000001")),
                    "ETH": AssetBalance(Decimal("1.123456789"), Decimal("0.000000001"), Decimal("1.12345679"))}
    assert str(spot["ETH"].free) == "1.123456789"
    assert swap == future == {"USDT": AssetBalance(Decimal("10.5"), Decimal("2.25"), Decimal("12.75"))}
    assert margin == {"BTC": AssetBalance(Decimal("0.05"), Decimal(0), Decimal("0.05")),
                      "USDT": AssetBalance(Decimal(300), Decimal(0), Decimal(300))}


def test_okx_balance_reads_the_trading_account(mock: Mock, settings: Settings) -> None:
    balances = run_with(settings, lambda g: g.fetch_balance(OKX_INFO, OKX, "spot"))
    assert balances == {
        "BTC": AssetBalance(Decimal("0.25"), Decimal(0), Decimal("0.25")),
        "ETH": AssetBalance(Decimal("1.5"), Decimal("0.5"), Decimal(2)),
        "USDC": AssetBalance(Decimal(1000), Decimal(0), Decimal(1000)),
    }


def test_markets_load_once_per_venue_for_every_account(mock: Mock, settings: Settings) -> None:
    keys = [mock.new_key("binance") for _ in range(3)]
    mock.reset()

    async def body(gateway: ExchangeGateway) -> None:
        await asyncio.gather(*(gateway.fetch_balance(BINANCE_INFO, k, "spot") for k in keys))
        await gateway.fetch_balance(BINANCE_INFO, keys[0], "spot")

    run_with(settings, body)
    paths = mock.venue("binance")["paths"]
    assert paths == {"/api/v3/exchangeInfo": 1, "/api/v3/account": 4}  # no per-client market load


def test_balance_errors(mock: Mock, settings: Settings) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        run_with(settings, lambda g: g.fetch_balance(CATALOGUE.get("okxus"), OKX, "margin"))
    assert caught.value.fields == {"account_type": "one of spot"}
    with pytest.raises(errors.ExchangeNotSupported):
        run_with(settings, lambda g: g.fetch_balance(CATALOGUE.get("bitmex"), {"api_key": "k", "secret": "s"}, "spot"))
    with pytest.raises(errors.InvalidCredentials):
        run_with(settings, lambda g: g.fetch_balance(BINANCE_INFO, {**BINANCE, "secret": "nope"}, "spot"))
    mock.mode("down")
    with pytest.raises(errors.ExchangeUnavailable):
        run_with(settings, lambda g: g.fetch_balance(OKX_INFO, OKX, "spot"))


# --------------------------------------------------------------------------- prices


def test_tickers_are_exact_decimals(mock: Mock, settings: Settings) -> None:
    mock.post("/_mock/prices", {"exchange": "okx", "prices": {"DOT/USDT": "4.123456789"}})
    try:
        binance = run_with(settings, lambda g: g.fetch_tickers(BINANCE_INFO))
        okx = run_with(settings, lambda g: g.fetch_prices(OKX_INFO, ["BTC/USDT", "DOT/USDT", "SOL/USDT", "X/Y"]))
    finally:
        mock.post("/_mock/prices", {"exchange": "okx", "prices": {"DOT/USDT": None}})
    assert binance == {"BTC/USDC": Decimal(50000), "BTC/USDT": Decimal(50000), "ETH/BTC": Decimal("0.06"),
                       "ETH/USDT": Decimal(3000)}
    assert okx == {"BTC/USDT": Decimal(50000), "DOT/USDT": Decimal("4.123456789")}  # SOL/USDT is listed, unpriced
    assert str(okx["DOT/USDT"]) == "4.123456789"


def test_prices_are_cached_per_venue_within_the_ttl(mock: Mock, settings: Settings) -> None:
    mock.reset()

    async def body(gateway: ExchangeGateway) -> tuple[dict, dict, dict]:
        first = await gateway.fetch_prices(BINANCE_INFO, ["BTC/USDT"])
        mock.post("/_mock/prices", {"exchange": "binance", "prices": {"BTC/USDT": "51000"}})
        second = await gateway.fetch_prices(BINANCE_INFO, ["BTC/USDT", "ETH/USDT"])  # within the TTL: cached
        return first, second, mock.venue("binance")["paths"]

    try:
        first, second, paths = run_with(settings, body)
    finally:
        mock.post("/_mock/prices", {"exchange": "binance", "prices": {"BTC/USDT": "50000"}})
    assert first == {"BTC/USDT": Decimal(50000)}
    assert second == {"BTC/USDT": Decimal(50000), "ETH/USDT": Decimal(3000)}
    assert paths == {"/api/v3/exchangeInfo": 1, "/api/v3/ticker/24hr": 1}


def test_prices_expire_after_the_ttl(mock: Mock) -> None:
    short = Settings(exchange_base_urls={"okx": mock.url}, exchange_price_ttl_seconds=0.2,
                     exchange_requests_per_second=1000)
    mock.reset()

    async def body(gateway: ExchangeGateway) -> tuple[dict, dict]:
        first = await gateway.fetch_prices(OKX_INFO, ["ETH/USDT"])
        mock.post("/_mock/prices", {"exchange": "okx", "prices": {"ETH/USDT": "3100.5"}})
        await asyncio.sleep(0.3)
        return first, await gateway.fetch_prices(OKX_INFO, ["ETH/USDT"])

    try:
        first, second = run_with(short, body)
    finally:
        mock.post("/_mock/prices", {"exchange": "okx", "prices": {"ETH/USDT": "3000"}})
    assert (first, second) == ({"ETH/USDT": Decimal(3000)}, {"ETH/USDT": Decimal("3100.5")})
    assert mock.venue("okx")["paths"] == {"/api/v5/public/instruments": 1, "/api/v5/market/tickers": 2}


def test_concurrent_price_reads_share_one_request(mock: Mock, settings: Settings) -> None:
    mock.reset()

    async def body(gateway: ExchangeGateway) -> list[dict]:
        return list(await asyncio.gather(*(gateway.fetch_prices(OKX_INFO, ["BTC/USDT"]) for _ in range(5))))

    assert run_with(settings, body) == [{"BTC/USDT": Decimal(50000)}] * 5
    assert mock.venue("okx")["paths"]["/api/v5/market/tickers"] == 1


def test_price_errors_are_classified(mock: Mock, settings: Settings) -> None:
    mock.mode("rate_limited")
    with pytest.raises(errors.ExchangeUnavailable) as caught:
        run_with(settings, lambda g: g.fetch_tickers(BINANCE_INFO))
    assert caught.value.retry_after == RETRY_AFTER_RATE_LIMITED
    with pytest.raises(errors.ExchangeNotSupported):
        run_with(settings, lambda g: g.fetch_tickers(CATALOGUE.get("bitmex")))


# --------------------------------------------------------------------------- logs


def test_no_ccxt_text_reaches_the_logs(mock: Mock, settings: Settings, logs) -> None:
    install_log_capture()
    start = len(LOGS.lines)
    secret = f"leaky-{uuid.uuid4().hex}"
    wrong = {"api_key": BINANCE["api_key"], "secret": secret}
    with pytest.raises(errors.InvalidCredentials):
        validate(settings, "binance", wrong)
    with pytest.raises(errors.InvalidCredentials):
        validate(settings, "okx", {**OKX, "secret": secret})
    for mode in ("rate_limited", "down"):
        mock.mode(mode)
        with pytest.raises(errors.ExchangeUnavailable):
            validate(settings, "binance", BINANCE)
        with pytest.raises(errors.ExchangeUnavailable):
            run_with(settings, lambda g: g.fetch_balance(OKX_INFO, OKX, "spot"))
    mock.mode("slow", delay=1.0)
    with pytest.raises(errors.ExchangeUnavailable):
        validate(Settings(exchange_base_urls={"binance": mock.url}, exchange_timeout_ms=200), "binance", BINANCE)
    # every line logged meanwhile, but the test's own control calls to the mock (httpx logs their URL)
    text = "\n".join(line for line in logs.lines[start:] if not line.startswith("httpx "))
    assert "InvalidCredentials" not in text  # (domain errors are not logged by the gateway either)
    assert "AuthenticationError" in text and "DDoSProtection" in text  # the class names are there
    for leak in (secret, BINANCE["api_key"], OKX["api_key"], OKX["passphrase"], "signature", "Signature",
                 "recvWindow", "-1022", "-1003", "50113", "OK-ACCESS", "Too many requests", mock.url,
                 f":{mock.server.port}", "/api/v3", "/api/v5"):
        assert leak not in text, leak


def test_a_key_revoked_after_a_balance_read_is_rejected_on_the_pooled_client(mock: Mock, settings: Settings) -> None:
    """ccxt reads Binance's -2015 as a temporary ban once a client has authenticated; a balance read judges
    the key afresh, so a key revoked at the venue is InvalidCredentials (not a 30 s 'rate limited')."""
    creds = mock.new_key()

    async def body(gateway: ExchangeGateway) -> tuple[int, BaseException | None]:
        await gateway.fetch_balance(BINANCE_INFO, creds, "spot")
        await gateway.fetch_balance(BINANCE_INFO, creds, "spot")
        built = gateway.clients_built
        mock.post("/_mock/revoke", {"exchange": "binance", "api_key": creds["api_key"]})
        try:
            await gateway.fetch_balance(BINANCE_INFO, creds, "spot")
        except errors.DomainError as exc:
            return gateway.clients_built - built, exc
        return gateway.clients_built - built, None

    new_clients, error = run_with(settings, body)
    assert new_clients == 0  # the same pooled client made all three calls
    assert isinstance(error, errors.InvalidCredentials), error
