"""The ccxt client factory: base-URL override, credential mapping, client options, error classification.

No network: clients are built but never called here.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom import errors
from strongroom.exchanges.catalogue import Catalogue, get_catalogue
from strongroom.exchanges.client import (
    OURS_TO_CCXT,
    RETRY_AFTER_RATE_LIMITED,
    RETRY_AFTER_TRANSIENT,
    build_client,
    ccxt_config,
    ccxt_module,
    classify,
    rebase_urls,
)
from strongroom.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SIGNED_URL = ("GET https://api.binance.com/api/v3/account?timestamp=1700000000000&recvWindow=10000"
              "&signature=02e6deadbeef 401 Unauthorized {\"code\":-2015,\"msg\":\"Invalid API-key\"}")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return get_catalogue()


def test_rebase_urls_replaces_scheme_and_host_everywhere_and_keeps_paths() -> None:
    urls = {
        "public": "https://api.binance.com/api/v3",
        "sapi": "https://api.binance.com/sapi/v1",
        "nested": {"fapi": "https://fapi.binance.com/fapi/v1", "root": "https://{hostname}"},
        "listed": ["https://a.example/x?y=1#f"],
        "rate": 50,
    }
    assert rebase_urls(urls, "http://127.0.0.1:9/") == {
        "public": "http://127.0.0.1:9/api/v3",
        "sapi": "http://127.0.0.1:9/sapi/v1",
        "nested": {"fapi": "http://127.0.0.1:9/fapi/v1", "root": "http://127.0.0.1:9"},
        "listed": ["http://127.0.0.1:9/x?y=1#f"],
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
    exchange = build_client(info, {name: f"{name}-value" for name in info.credentials}, settings)
    urls = list(_strings(exchange.urls["api"]))
    assert urls and all(u.startswith("http://127.0.0.1:1") for u in urls)
    assert exchange.timeout == 1234 and exchange.verbose is False


def test_without_an_override_the_venue_urls_are_kept(catalogue: Catalogue) -> None:
    exchange = build_client(catalogue.get("binance"), {"api_key": "k", "secret": "s"},
                            Settings(exchange_base_urls={"okx": "http://127.0.0.1:1"}))
    assert all("127.0.0.1" not in u for u in _strings(exchange.urls["api"]))
    assert any(u.startswith("https://api.binance.com") for u in _strings(exchange.urls["api"]))


def test_credentials_map_to_ccxt_names(catalogue: Catalogue) -> None:
    settings = Settings()
    okx = build_client(catalogue.get("okx"), {"api_key": "k1", "secret": "s1", "passphrase": "p1"}, settings)
    assert (okx.apiKey, okx.secret, okx.password) == ("k1", "s1", "p1")
    ndax_info = catalogue.get("ndax")
    ndax = build_client(ndax_info, {"api_key": "k", "secret": "s", "passphrase": "p", "uid": "u", "login": "l"},
                        settings)
    assert (ndax.apiKey, ndax.secret, ndax.password, ndax.uid, ndax.login) == ("k", "s", "p", "u", "l")
    hyperliquid = build_client(catalogue.get("hyperliquid"), {"private_key": "0xabc", "address": "0xdef"}, settings)
    assert (hyperliquid.privateKey, hyperliquid.walletAddress) == ("0xabc", "0xdef")
    # every field of the catalogue has a ccxt name
    assert {f for e in catalogue.all() for f in e.allowed_credentials} <= set(OURS_TO_CCXT)


def test_client_options_no_ccxt_limiter_no_close_sleep_exact_numbers(catalogue: Catalogue) -> None:
    exchange = build_client(catalogue.get("binance"), {"api_key": "k", "secret": "s"}, Settings())
    assert exchange.enableRateLimit is False
    assert exchange.timeout_on_exit == 0
    assert exchange.number is str
    assert exchange.options["fetchCurrencies"] is False and exchange.has["fetchCurrencies"] is False
    assert exchange.logger.name == "strongroom.exchanges.ccxt"
    assert exchange.logger.getEffectiveLevel() >= logging.WARNING
    public = build_client(catalogue.get("binance"), {}, Settings())
    assert not public.apiKey and not public.secret
    assert public.ssl_context is exchange.ssl_context is not None  # one CA bundle load for every client


def test_client_supplied_fields_cannot_reach_ccxt_options(catalogue: Catalogue) -> None:
    info = catalogue.get("binance")
    with pytest.raises(errors.ValidationFailed) as caught:
        ccxt_config(info, {"api_key": "k", "secret": "s", "hostname": "evil.example", "urls": "x"}, Settings())
    assert caught.value.fields == {"hostname": "unknown field", "urls": "unknown field"}
    with pytest.raises(errors.ValidationFailed) as caught:
        ccxt_config(info, {"api_key": "", "secret": 5}, Settings())  # type: ignore[dict-item]
    assert caught.value.fields == {"api_key": "must be a non-empty string", "secret": "must be a non-empty string"}


def _ccxt_errors() -> list[tuple[str, type[errors.DomainError], int | None]]:
    return [
        ("AuthenticationError", errors.InvalidCredentials, None),
        ("PermissionDenied", errors.InvalidCredentials, None),
        ("AccountSuspended", errors.InvalidCredentials, None),
        ("DDoSProtection", errors.ExchangeUnavailable, RETRY_AFTER_RATE_LIMITED),
        ("RateLimitExceeded", errors.ExchangeUnavailable, RETRY_AFTER_RATE_LIMITED),
        ("RequestTimeout", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
        ("ExchangeNotAvailable", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
        ("InvalidNonce", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
        ("NetworkError", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
        ("ExchangeError", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
        ("BadResponse", errors.ExchangeUnavailable, RETRY_AFTER_TRANSIENT),
    ]


@pytest.mark.parametrize(("name", "expected", "retry_after"), _ccxt_errors())
def test_classification_keeps_no_message_text(name: str, expected: type, retry_after: int | None,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    raised = getattr(ccxt_module(), name)("binance " + SIGNED_URL)
    error = classify(raised, "binance")
    assert type(error) is expected
    assert error.retry_after == retry_after
    for text in (error.message, str(error), repr(error), json.dumps(error.fields), json.dumps(error.details)):
        for leak in ("signature", "02e6deadbeef", "api.binance.com", "-2015", "Invalid API-key"):
            assert leak not in text
    assert error.__cause__ is None and error.__context__ is None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert name in logged  # the class name is logged...
    assert "signature" not in logged and "02e6deadbeef" not in logged and "-2015" not in logged  # ...nothing else


def test_other_exceptions_are_unavailable_and_domain_errors_pass_through() -> None:
    error = classify(OSError("connect to http://127.0.0.1:9/api?signature=abc refused"), "binance")
    assert type(error) is errors.ExchangeUnavailable and "signature" not in str(error)
    mine = errors.ValidationFailed("x", fields={"api_key": "unknown field"})
    assert classify(mine, "binance") is mine


def test_start_up_never_imports_ccxt() -> None:
    code = (
        "import sys\n"
        "import strongroom.app, strongroom.core, strongroom.exchanges.gateway, strongroom.exchanges.venues\n"
        "from strongroom.exchanges.gateway import ExchangeGateway\n"
        "from strongroom.settings import Settings\n"
        "ExchangeGateway(Settings())\n"
        "print(any(m == 'ccxt' or m.startswith('ccxt.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
