"""The ccxt client factory: build configured ``ccxt.async_support`` clients and classify ccxt errors.

ccxt is imported lazily (``load_ccxt``, in a worker thread, once): importing it costs 0.7 s and
~100 MB, and start-up never needs it.

Every client gets: credentials under ccxt's names (only the venue's own fields: nothing a client
sends can reach other ccxt options such as ``urls``, ``hostname`` or proxies), the operator's
base-URL override (``settings.exchange_base_urls``, applied to every API URL of the venue), the
timeout, ``verbose`` off and a logger that never emits below WARNING (ccxt logs requests at DEBUG,
headers and signed URLs included), ccxt's own rate limiter off (the gateway limits per venue),
``number = str`` (amounts and prices come back as ccxt's exact decimal strings, never floats),
no close-time sleep (``timeout_on_exit = 0``: the gateway closes clients off the request path) and
one shared SSL context (ccxt would otherwise load the CA bundle again for every client: ~17 ms).

Error classification (ccxt messages carry signed URLs and raw bodies, so they are never passed on
or logged; only the exception class name is logged, on ``strongroom.exchanges``):

* ``AuthenticationError`` subtree (PermissionDenied, AccountSuspended, ...) -> ``InvalidCredentials``.
* ``DDoSProtection`` / ``RateLimitExceeded`` (HTTP 429/418, venue rate-limit codes) ->
  ``ExchangeUnavailable`` with ``retry_after=RETRY_AFTER_RATE_LIMITED`` (30 s).
* every other ``NetworkError`` (RequestTimeout, ExchangeNotAvailable, InvalidNonce, ...), any other
  ccxt ``BaseError``, and any other exception raised while talking to the venue (aiohttp/OS errors,
  an unexpected body) -> ``ExchangeUnavailable`` with ``retry_after=RETRY_AFTER_TRANSIENT`` (5 s).

Order calls (``classify_order``) first tell the venue's refusals apart: InsufficientFunds ->
``InsufficientFunds``; OrderNotFound -> ``NotFound``; BadSymbol -> ``ValidationFailed`` (``symbol``);
InvalidOrder, OperationRejected, BadRequest, ... -> ``OrderRejected``. For a placement, whatever else
may have happened after the order reached the venue (a network error, a 5xx, an unreadable answer) is
``OrderOutcomeUnknown``: only credential errors, rate limits and a refused timestamp say for sure that
nothing was placed.
"""

from __future__ import annotations

import importlib
import logging
import ssl
from collections.abc import Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread

from strongroom import errors
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.settings import Settings

log = logging.getLogger("strongroom.exchanges")
# ccxt logs every request and response at DEBUG (headers with the API key and passphrase, signed
# URLs, raw bodies). Its clients get this logger instead, which never emits below WARNING whatever
# level the operator configures (e.g. STRONGROOM_LOG_LEVEL=debug).
ccxt_log = logging.getLogger("strongroom.exchanges.ccxt")
ccxt_log.setLevel(logging.WARNING)

RETRY_AFTER_RATE_LIMITED = 30
RETRY_AFTER_TRANSIENT = 5

INVALID_MESSAGE = "the exchange rejected these credentials"
UNAVAILABLE_MESSAGE = "the exchange could not be reached; try again later"
INSUFFICIENT_MESSAGE = "the exchange account does not hold enough free funds for this order"
REJECTED_MESSAGE = "the exchange refused this order"
OUTCOME_UNKNOWN_MESSAGE = ("the exchange's answer to this order was lost: it may or may not have been placed; "
                           "look it up by its client order id")
ORDER_NOT_FOUND_MESSAGE = "the exchange does not know this order"
UNKNOWN_SYMBOL_MESSAGE = "not a market of this exchange"

# our credential name -> ccxt attribute name
OURS_TO_CCXT: dict[str, str] = {
    "api_key": "apiKey",
    "secret": "secret",
    "passphrase": "password",
    "uid": "uid",
    "address": "walletAddress",
    "private_key": "privateKey",
    "account_id": "accountId",
    "login": "login",
    "twofa": "twofa",
    "token": "token",
}

_ccxt: ModuleType | None = None
_ssl_context: ssl.SSLContext | None = None


def _import_ccxt() -> tuple[ModuleType, ssl.SSLContext]:
    import certifi

    module = importlib.import_module("ccxt.async_support")
    return module, ssl.create_default_context(cafile=certifi.where())


async def load_ccxt() -> ModuleType:
    """Return ``ccxt.async_support``, importing it (and building the shared SSL context) in a worker thread once."""
    global _ccxt, _ssl_context
    if _ccxt is None:
        module, context = await anyio.to_thread.run_sync(_import_ccxt)
        _ccxt, _ssl_context = module, context
    return _ccxt


def ccxt_module() -> ModuleType:
    """Return ``ccxt.async_support`` (importing it in this thread if ``load_ccxt`` has not run yet)."""
    global _ccxt, _ssl_context
    if _ccxt is None:
        _ccxt, _ssl_context = _import_ccxt()
    return _ccxt


def rebase_urls(urls: Any, base_url: str) -> Any:
    """Return ``urls`` (a str or nested dict/list of strs) with scheme+host replaced by ``base_url``.

    The path, query and fragment of each ccxt URL are kept, so
    ``https://api.binance.com/api/v3`` becomes ``<base_url>/api/v3``. Non-URL values are kept.
    """
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, list):
        return [rebase_urls(value, base_url) for value in urls]
    if not isinstance(urls, str) or "://" not in urls:
        return urls
    parts = urlsplit(urls)
    rest = parts.path
    if parts.query:
        rest += "?" + parts.query
    if parts.fragment:
        rest += "#" + parts.fragment
    return base_url.rstrip("/") + rest


def ccxt_config(info: ExchangeInfo, credentials: Mapping[str, str], settings: Settings) -> dict[str, Any]:
    """Return the ccxt constructor config: credentials under ccxt names, timeout, no verbose, no ccxt limiter.

    Raises ``errors.ValidationFailed`` naming each field the venue does not accept and each value
    that is not a non-empty string, so that no client-supplied key can reach other ccxt options.
    """
    problems = {name: "unknown field" for name in credentials if name not in info.allowed_credentials}
    problems.update(
        {name: "must be a non-empty string" for name, v in credentials.items()
         if name not in problems and (not isinstance(v, str) or not v)}
    )
    if problems:
        raise errors.ValidationFailed("invalid credentials for " + info.name, fields=problems)
    config: dict[str, Any] = {
        "timeout": int(settings.exchange_timeout_ms),
        "enableRateLimit": False,
        "verbose": False,
    }
    for ours, value in credentials.items():
        config[OURS_TO_CCXT[ours]] = value
    return config


def build_client(info: ExchangeInfo, credentials: Mapping[str, str], settings: Settings) -> Any:
    """Return a configured ``ccxt.async_support`` client for ``info`` (see the module doc).

    ``credentials`` are ours (``api_key``, ...); empty for a public client. Makes no network call and
    needs no event loop, so it may run in a worker thread. Raises ``errors.ValidationFailed`` (fields).
    """
    config = ccxt_config(info, credentials, settings)
    exchange = getattr(ccxt_module(), info.id)(config)
    exchange.verbose = False
    exchange.logger = ccxt_log
    exchange.number = str
    exchange.timeout_on_exit = 0
    exchange.ssl_context = _ssl_context
    base_url = settings.exchange_base_urls.get(info.id)
    if base_url:
        exchange.urls = {**exchange.urls, "api": rebase_urls(exchange.urls.get("api"), base_url)}
    exchange.has = {**exchange.has, "fetchCurrencies": False}
    exchange.options["fetchCurrencies"] = False
    return exchange


def classify(exc: BaseException, venue: str) -> errors.DomainError:
    """Return the domain error for an exception raised while talking to ``venue``.

    Logs the exception's class name only (never its message). A ``DomainError`` is returned as is.
    """
    if isinstance(exc, errors.DomainError):
        return exc
    ccxt = ccxt_module()
    name = type(exc).__name__
    if isinstance(exc, ccxt.AuthenticationError):
        log.info("%s rejected credentials (%s)", venue, name)
        return errors.InvalidCredentials(INVALID_MESSAGE)
    # In ccxt 4.5 RateLimitExceeded is a sibling of DDoSProtection (both NetworkError).
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        log.warning("%s rate limited (%s)", venue, name)
        return errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_RATE_LIMITED)
    log.warning("%s call failed (%s)", venue, name)
    return errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_TRANSIENT)


def classify_order(exc: BaseException, venue: str, *, placing: bool = False) -> errors.DomainError:
    """Return the domain error for an exception raised by an order call (see ``strongroom.exchanges.orders``).

    ``placing``: the call sent a new order, so a lost answer (a network error, an unreadable body, anything
    but the venue's own refusal, rate limit or credential error) is ``OrderOutcomeUnknown``, and any other
    refusal by the venue ``OrderRejected``. Logs the exception's class name only; a ``DomainError`` is
    returned as is.
    """
    if isinstance(exc, errors.DomainError):
        return exc
    ccxt = ccxt_module()
    name = type(exc).__name__
    # refused before anything was placed: credentials, rate limits, the request's timestamp
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.InvalidNonce)):
        return classify(exc, venue)
    if isinstance(exc, ccxt.InsufficientFunds):
        log.info("%s refused an order: insufficient funds (%s)", venue, name)
        return errors.InsufficientFunds(INSUFFICIENT_MESSAGE)
    if isinstance(exc, ccxt.OrderNotFound):
        return errors.NotFound(ORDER_NOT_FOUND_MESSAGE)
    if isinstance(exc, ccxt.BadSymbol):
        return errors.ValidationFailed("unknown symbol", fields={"symbol": UNKNOWN_SYMBOL_MESSAGE})
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.OperationRejected, ccxt.BadRequest, ccxt.ArgumentsRequired,
                        ccxt.NotSupported)):
        log.info("%s refused an order call (%s)", venue, name)
        return errors.OrderRejected(REJECTED_MESSAGE)
    if placing:
        if isinstance(exc, ccxt.ExchangeError):  # the venue answered, with a refusal ccxt has no class for
            log.info("%s refused an order (%s)", venue, name)
            return errors.OrderRejected(REJECTED_MESSAGE)
        log.warning("%s: the answer to an order was lost (%s)", venue, name)
        return errors.OrderOutcomeUnknown(OUTCOME_UNKNOWN_MESSAGE, retry_after=RETRY_AFTER_TRANSIENT)
    return classify(exc, venue)


async def close_client(exchange: Any, venue: str) -> None:
    """Close a client's HTTP session; never raises (closing must never mask an outcome)."""
    try:
        await exchange.close()
    except Exception as exc:  # noqa: BLE001
        log.debug("%s close failed (%s)", venue, type(exc).__name__)
