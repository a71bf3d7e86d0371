"""Exchange catalogue, catalogue generator, validators and the loopback mock exchange.

No network beyond 127.0.0.1: every validator test points ccxt at ``MockExchangeServer``
through ``Settings.exchange_base_urls``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

from datetime import UTC

from strongroom import errors
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo, get_catalogue
from strongroom.exchanges.validators import (
    RETRY_AFTER_RATE_LIMITED,
    BinanceValidator,
    CcxtValidator,
    OkxValidator,
    ValidationOutcome,
    rebase_urls,
    validate,
    validate_async,
    validator_for,
)
from strongroom.mock_exchange import MockExchangeServer
from strongroom.settings import Settings

BINANCE = {"api_key": "demo-binance-key", "secret": "demo-binance-secret"}
BINANCE_WITHDRAW = {"api_key": "demo-binance-withdraw-key", "secret": "demo-binance-withdraw-secret"}
OKX = {"api_key": "demo-okx-key", "secret": "demo-okx-secret", "passphrase": "demo-okx-passphrase"}


# --------------------------------------------------------------------------- catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return get_catalogue()


def test_every_ccxt_exchange_is_in_the_catalogue_with_its_required_credentials(catalogue: Catalogue) -> None:
    import ccxt

    ours = {"apiKey": "api_key", "secret": "secret", "password": "passphrase", "uid": "uid",
            "walletAddress": "address", "privateKey": "private_key", "accountId": "account_id",
            "login": "login", "twofa": "twofa", "token": "token"}
    ids = {e.id for e in catalogue.all()}
    assert set(ccxt.exchanges) <= ids
    for exchange_id in ("binance", "okx", "kraken", "ndax", "hyperliquid"):
        required = {ours[k] for k, v in getattr(ccxt, exchange_id)().requiredCredentials.items() if v}
        info = catalogue.get(exchange_id)
        assert set(info.credentials) == required
        assert info.validator == "ccxt"
    assert catalogue.get("okx").credentials == ("api_key", "secret", "passphrase")
    assert catalogue.get("ndax").credentials == ("api_key", "secret", "passphrase", "uid", "login")


def test_all_is_sorted_by_id(catalogue: Catalogue) -> None:
    ids = [e.id for e in catalogue.all()]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids)) == len(catalogue)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("binance", "binance"),
        ("BINANCE", "binance"),
        ("Binance", "binance"),
        ("okex", "okx"),
        ("OKEX", "okx"),
        ("COINBASE", "coinbase"),
        ("BITMEX", "bitmex"),
        ("CONCURRENCY.COM", "currencycom"),
        ("currency.com", "currencycom"),
        ("CurrencyCom", "currencycom"),
    ],
)
def test_ids_and_aliases_resolve_case_insensitively(catalogue: Catalogue, name: str, expected: str) -> None:
    assert catalogue.get(name).id == expected


@pytest.mark.parametrize("name", ["nope", "", "binance.com", "okx2"])
def test_unknown_exchange_is_not_found(catalogue: Catalogue, name: str) -> None:
    with pytest.raises(errors.NotFound) as info:
        catalogue.get(name)
    assert info.value.message == "unknown exchange"


def test_non_ccxt_seed_venues_are_present_without_validator(catalogue: Catalogue) -> None:
    bitmex = catalogue.get("bitmex")
    assert (bitmex.name, bitmex.credentials, bitmex.validator) == ("BitMEX", ("api_key", "secret"), None)
    assert bitmex.account_types == ("spot", "swap", "future")
    currencycom = catalogue.get("currencycom")
    assert (currencycom.name, currencycom.credentials, currencycom.validator) == (
        "Currency.com",
        ("api_key", "secret"),
        None,
    )
    assert set(currencycom.aliases) == {"CONCURRENCY.COM", "CURRENCY.COM"}


def test_to_public_is_json_ready(catalogue: Catalogue) -> None:
    public = catalogue.get("okx").to_public()
    assert json.loads(json.dumps(public)) == public
    assert public["id"] == "okx" and public["credentials"] == ["api_key", "secret", "passphrase"]
    assert "okex" in public["aliases"]
    assert set(public["account_types"]) <= {"spot", "margin", "swap", "future", "option"}


def test_check_credentials_names_every_missing_and_unknown_field(catalogue: Catalogue) -> None:
    okx = catalogue.get("okx")
    with pytest.raises(errors.ValidationFailed) as info:
        catalogue.check_credentials(okx, {"api_key": "k", "apiKey": "k", "urls": "http://evil"})
    assert info.value.fields == {
        "secret": "required",
        "passphrase": "required",
        "apiKey": "unknown field",
        "urls": "unknown field",
    }


def test_check_credentials_rejects_blank_and_non_strings(catalogue: Catalogue) -> None:
    okx = catalogue.get("okx")
    with pytest.raises(errors.ValidationFailed) as info:
        catalogue.check_credentials(okx, {"api_key": "   ", "secret": 42, "passphrase": None})
    assert info.value.fields == {
        "api_key": "must be a non-empty string",
        "secret": "must be a non-empty string",
        "passphrase": "required",
    }


def test_check_credentials_returns_stripped_values_in_catalogue_order(catalogue: Catalogue) -> None:
    cleaned = catalogue.check_credentials(
        catalogue.get("OKEX"), {"passphrase": " p ", "secret": "s\n", "api_key": "\tk"}
    )
    assert cleaned == {"api_key": "k", "secret": "s", "passphrase": "p"}
    assert list(cleaned) == ["api_key", "secret", "passphrase"]


def test_optional_credentials_are_accepted_and_blank_ones_dropped() -> None:
    info = ExchangeInfo("x", "X", ("api_key",), ("uid",), ("spot",), None, ())
    assert Catalogue.check_credentials(info, {"api_key": "k", "uid": " u "}) == {"api_key": "k", "uid": "u"}
    assert Catalogue.check_credentials(info, {"api_key": "k", "uid": ""}) == {"api_key": "k"}


def test_catalogue_import_does_not_import_ccxt() -> None:
    code = (
        "import sys\n"
        "import strongroom.exchanges.catalogue as c\n"
        "cat = c.get_catalogue()\n"
        "assert cat.get('BINANCE').id == 'binance'\n"
        "print('ccxt' in sys.modules, any(m.startswith('ccxt') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_generator_is_deterministic_and_matches_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "catalogue.json"
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "gen_catalogue.py"), "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        assert out.read_bytes() == (ROOT / "strongroom" / "exchanges" / "catalogue.json").read_bytes()


# --------------------------------------------------------------------------- validators: unit


def test_rebase_urls_replaces_scheme_and_host_everywhere_and_keeps_paths() -> None:
    urls = {
        "public": "https://api.binance.com/api/v3",
        "sapi": "https://api.binance.com/sapi/v1",
        "nested": {"fapi": "https://fapi.binance.com/fapi/v1", "root": "https://{hostname}"},
        "rate": 50,
    }
    assert rebase_urls(urls, "http://127.0.0.1:9/") == {
        "public": "http://127.0.0.1:9/api/v3",
        "sapi": "http://127.0.0.1:9/sapi/v1",
        "nested": {"fapi": "http://127.0.0.1:9/fapi/v1", "root": "http://127.0.0.1:9"},
        "rate": 50,
    }
    assert rebase_urls("https://api.kraken.com", "http://127.0.0.1:9") == "http://127.0.0.1:9"


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("exchange_id", ["binance", "okx", "kraken", "bybit"])
def test_every_api_url_points_at_the_configured_base(catalogue: Catalogue, exchange_id: str) -> None:
    info = catalogue.get(exchange_id)
    settings = Settings(exchange_base_urls={exchange_id: "http://127.0.0.1:1"}, exchange_timeout_ms=1234)
    validator = validator_for(info, settings)
    assert validator is not None
    creds = {name: "x" for name in info.credentials}
    exchange = validator.build(creds)
    urls = list(_strings(exchange.urls["api"]))
    assert urls and all(u.startswith("http://127.0.0.1:1") for u in urls)
    assert exchange.timeout == 1234 and exchange.verbose is False
    assert exchange.apiKey == "x"


def test_client_supplied_fields_cannot_reach_ccxt_options(catalogue: Catalogue) -> None:
    settings = Settings(exchange_base_urls={"binance": "http://127.0.0.1:1"})
    with pytest.raises(errors.ValidationFailed) as info:
        validate(catalogue.get("binance"), {**BINANCE, "hostname": "evil.example", "urls": "x"}, settings)
    assert info.value.fields == {"hostname": "unknown field", "urls": "unknown field"}


def test_registry_uses_venue_subclasses_and_generic_base(catalogue: Catalogue) -> None:
    settings = Settings()
    assert type(validator_for(catalogue.get("binance"), settings)) is BinanceValidator
    assert type(validator_for(catalogue.get("okex"), settings)) is OkxValidator
    assert type(validator_for(catalogue.get("kraken"), settings)) is CcxtValidator
    assert validator_for(catalogue.get("bitmex"), settings) is None
    assert validator_for(catalogue.get("currencycom"), settings) is None


# --------------------------------------------------------------------------- validators against the mock


@pytest.fixture(scope="module")
def mock() -> Iterator[MockExchangeServer]:
    with MockExchangeServer() as server:
        yield server


@pytest.fixture(scope="module")
def settings(mock: MockExchangeServer) -> Settings:
    return Settings(
        exchange_base_urls={"binance": mock.url, "okx": mock.url, "binanceus": mock.url},
        exchange_timeout_ms=3000,
    )


@pytest.fixture(autouse=True)
def _normal_behaviour(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "mock" in request.fixturenames:
        server: MockExchangeServer = request.getfixturevalue("mock")
        httpx.post(server.url + "/_mock/behaviour", json={"mode": "normal"}).raise_for_status()


def _stats(mock: MockExchangeServer) -> dict:
    return httpx.get(mock.url + "/_mock/stats").json()


def _set_mode(mock: MockExchangeServer, mode: str, delay: float | None = None) -> None:
    body: dict = {"mode": mode}
    if delay is not None:
        body["delay_seconds"] = delay
    httpx.post(mock.url + "/_mock/behaviour", json=body).raise_for_status()


def test_binance_valid_key_is_verified_without_withdrawals(catalogue, mock, settings) -> None:
    before = _stats(mock)
    outcome = validate(catalogue.get("BINANCE"), BINANCE, settings)
    assert outcome == ValidationOutcome(verified=True, can_withdraw=False)
    after = _stats(mock)
    # exactly the account call and the apiRestrictions call, both correctly signed; no market load
    assert after["binance"]["requests"] - before.get("binance", {}).get("requests", 0) == 2
    assert after["binance"]["valid_signatures"] - before.get("binance", {}).get("valid_signatures", 0) == 2


def test_binance_withdrawal_key_reports_can_withdraw(catalogue, mock, settings) -> None:
    outcome = validate(catalogue.get("binance"), BINANCE_WITHDRAW, settings)
    assert outcome == ValidationOutcome(verified=True, can_withdraw=True)


def test_binance_wrong_secret_is_invalid_and_leaks_nothing(catalogue, mock, settings, caplog) -> None:
    secret = "wrong-secret-9f8e7d"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.InvalidCredentials) as info:
        validate(catalogue.get("binance"), {"api_key": BINANCE["api_key"], "secret": secret}, settings)
    err = info.value
    for text in (err.message, str(err), repr(err), json.dumps(err.fields), json.dumps(err.details)):
        assert secret not in text
        assert "signature" not in text.lower()
        assert mock.url not in text and "127.0.0.1" not in text and "/api/v3" not in text
    assert err.__cause__ is None and err.__context__ is None
    own_logs = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("strongroom"))
    assert "signature" not in own_logs and secret not in own_logs and "127.0.0.1" not in own_logs


def test_binance_unknown_key_is_invalid(catalogue, mock, settings) -> None:
    with pytest.raises(errors.InvalidCredentials):
        validate(catalogue.get("binance"), {"api_key": "who-is-this", "secret": "x"}, settings)


def test_rate_limited_is_unavailable_with_long_retry_after(catalogue, mock, settings) -> None:
    _set_mode(mock, "rate_limited")
    with pytest.raises(errors.ExchangeUnavailable) as info:
        validate(catalogue.get("binance"), BINANCE, settings)
    assert info.value.retry_after == RETRY_AFTER_RATE_LIMITED
    with pytest.raises(errors.ExchangeUnavailable) as info:
        validate(catalogue.get("okx"), OKX, settings)
    assert info.value.retry_after == RETRY_AFTER_RATE_LIMITED


def test_down_is_unavailable(catalogue, mock, settings) -> None:
    _set_mode(mock, "down")
    for name, creds in (("binance", BINANCE), ("okx", OKX)):
        with pytest.raises(errors.ExchangeUnavailable) as info:
            validate(catalogue.get(name), creds, settings)
        assert info.value.retry_after and 0 < info.value.retry_after < RETRY_AFTER_RATE_LIMITED
        assert "127.0.0.1" not in str(info.value)


def test_slow_exchange_times_out_as_unavailable(catalogue, mock) -> None:
    _set_mode(mock, "slow", delay=2.0)
    fast = Settings(exchange_base_urls={"binance": mock.url}, exchange_timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(errors.ExchangeUnavailable) as info:
        validate(catalogue.get("binance"), BINANCE, fast)
    assert time.monotonic() - started < 1.8
    assert info.value.retry_after


def test_unreachable_exchange_is_unavailable(catalogue) -> None:
    dead = Settings(exchange_base_urls={"binance": "http://127.0.0.1:9"}, exchange_timeout_ms=1000)
    with pytest.raises(errors.ExchangeUnavailable) as info:
        validate(catalogue.get("binance"), BINANCE, dead)
    assert info.value.retry_after


def test_okx_valid_key_is_verified(catalogue, mock, settings) -> None:
    before = _stats(mock).get("okx", {}).get("valid_signatures", 0)
    assert validate(catalogue.get("okex"), OKX, settings) == ValidationOutcome(verified=True, can_withdraw=False)
    assert _stats(mock)["okx"]["valid_signatures"] == before + 1


def test_okx_withdrawal_key_reports_can_withdraw(catalogue, mock, settings) -> None:
    creds = {"api_key": "okx-w-key", "secret": "okx-w-secret", "passphrase": "okx-w-pass"}
    httpx.post(
        mock.url + "/_mock/accounts", json={"exchange": "okx", **creds, "can_withdraw": True}
    ).raise_for_status()
    assert validate(catalogue.get("okx"), creds, settings) == ValidationOutcome(verified=True, can_withdraw=True)


@pytest.mark.parametrize(
    "creds",
    [
        {**OKX, "passphrase": "wrong-passphrase"},
        {**OKX, "secret": "wrong-secret"},
        {**OKX, "api_key": "unknown-okx-key"},
    ],
    ids=["wrong-passphrase", "wrong-secret", "unknown-key"],
)
def test_okx_bad_credentials_are_invalid(catalogue, mock, settings, creds) -> None:
    with pytest.raises(errors.InvalidCredentials) as info:
        validate(catalogue.get("okx"), creds, settings)
    assert "wrong" not in str(info.value) and "OK-ACCESS" not in str(info.value)


def test_generic_ccxt_validator_checks_a_real_signature(catalogue, mock, settings) -> None:
    """binanceus has no subclass: the base class's fetch_balance must reach the mock's account call."""
    httpx.post(
        mock.url + "/_mock/accounts", json={"exchange": "binance", "api_key": "us-key", "secret": "us-secret"}
    ).raise_for_status()
    before = _stats(mock).get("binance", {}).get("valid_signatures", 0)
    creds = {"api_key": "us-key", "secret": "us-secret"}
    assert validate(catalogue.get("binanceus"), creds, settings) == ValidationOutcome(True, None)
    assert _stats(mock)["binance"]["valid_signatures"] > before
    with pytest.raises(errors.InvalidCredentials):
        validate(catalogue.get("binanceus"), {"api_key": "us-key", "secret": "nope"}, settings)


@pytest.mark.parametrize("name", ["bitmex", "CONCURRENCY.COM"])
def test_venue_without_validator_is_unverified_without_network(catalogue, mock, settings, name) -> None:
    before = _stats(mock)
    outcome = validate(catalogue.get(name), {"api_key": "k", "secret": "s"}, settings)
    assert outcome == ValidationOutcome(verified=False, can_withdraw=None)
    assert _stats(mock) == before


def test_validate_async_and_sync_inside_a_running_loop(catalogue, mock, settings) -> None:
    async def main() -> tuple[ValidationOutcome, ValidationOutcome]:
        direct = await validate_async(catalogue.get("binance"), BINANCE, settings)
        nested = validate(catalogue.get("binance"), BINANCE_WITHDRAW, settings)  # loop running here
        return direct, nested

    direct, nested = asyncio.run(main())
    assert direct == ValidationOutcome(True, False)
    assert nested == ValidationOutcome(True, True)


# --------------------------------------------------------------------------- the mock itself


def _binance_query(secret: str, timestamp: int | None = None) -> str:
    query = f"timestamp={timestamp or int(time.time() * 1000)}&recvWindow=5000"
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def test_mock_really_checks_binance_signatures(mock) -> None:
    headers = {"X-MBX-APIKEY": BINANCE["api_key"]}
    bad = httpx.get(f"{mock.url}/api/v3/account?{_binance_query('not-the-secret')}", headers=headers)
    assert bad.status_code == 400
    assert bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    good = httpx.get(f"{mock.url}/api/v3/account?{_binance_query(BINANCE['secret'])}", headers=headers)
    assert good.status_code == 200
    assert good.json()["balances"][0] == {"asset": "BTC", "free": "0.50000000", "locked": "0.10000000"}
    stale = httpx.get(
        f"{mock.url}/api/v3/account?{_binance_query(BINANCE['secret'], int(time.time() * 1000) - 60_000)}",
        headers=headers,
    )
    assert stale.status_code == 400 and stale.json()["code"] == -1021
    unknown = httpx.get(
        f"{mock.url}/sapi/v1/account/apiRestrictions?{_binance_query('x')}", headers={"X-MBX-APIKEY": "nobody"}
    )
    assert unknown.status_code == 401
    assert unknown.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


def test_mock_really_checks_okx_signatures(mock) -> None:
    import base64
    from datetime import datetime

    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    path = "/api/v5/account/balance"

    def sign(secret: str) -> str:
        digest = hmac.new(secret.encode(), (timestamp + "GET" + path).encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    headers = {
        "OK-ACCESS-KEY": OKX["api_key"],
        "OK-ACCESS-PASSPHRASE": OKX["passphrase"],
        "OK-ACCESS-TIMESTAMP": timestamp,
    }
    bad = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-SIGN": sign("nope")})
    assert bad.status_code == 401 and bad.json()["code"] == "50113"
    good = httpx.get(mock.url + path, headers={**headers, "OK-ACCESS-SIGN": sign(OKX["secret"])})
    assert good.status_code == 200 and good.json()["code"] == "0"
    unknown = httpx.get(
        mock.url + path, headers={**headers, "OK-ACCESS-KEY": "nobody", "OK-ACCESS-SIGN": sign(OKX["secret"])}
    )
    assert unknown.status_code == 401
    assert unknown.json() == {"code": "50111", "msg": "Invalid OK-ACCESS-KEY", "data": []}


def test_mock_control_endpoints(mock) -> None:
    assert httpx.post(mock.url + "/_mock/behaviour", json={"mode": "weird"}).status_code == 400
    kraken = {"exchange": "kraken", "api_key": "a", "secret": "b"}
    assert httpx.post(mock.url + "/_mock/accounts", json=kraken).status_code == 400
    _set_mode(mock, "down")
    assert httpx.get(mock.url + "/api/v3/ping").status_code == 503
    _set_mode(mock, "rate_limited")
    limited = httpx.get(mock.url + "/api/v3/time")
    assert limited.status_code == 429 and limited.json()["code"] == -1003
    _set_mode(mock, "normal")
    assert httpx.get(mock.url + "/api/v3/exchangeInfo").json()["symbols"] == []
    stats = _stats(mock)
    assert {"requests", "private_requests", "valid_signatures"} <= set(stats)
