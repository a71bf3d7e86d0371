"""Live credential checks through ``ccxt.async_support`` (imported lazily, inside functions).

Design (Freqtrade style): ``CcxtValidator`` does everything common - building the ccxt
client, the base-URL override, the timeout, classification of ccxt errors, closing the
client - and calls one cheap private request in ``probe()``. Venue quirks live in small
subclasses registered in ``VALIDATORS``; every other ccxt venue uses the base class
(``fetch_balance`` without the currency download). Venues whose catalogue ``validator`` is
null have no validator: the outcome is ``verified=False`` and the caller stores them as
``unverified``.

Error mapping (ccxt messages carry signed URLs and raw bodies, so they are never passed on
or logged; only the exception class name is logged, on ``strongroom.exchanges``):

* ``AuthenticationError`` subtree (PermissionDenied, AccountSuspended, ...) ->
  ``errors.InvalidCredentials``.
* ``DDoSProtection`` / ``RateLimitExceeded`` (HTTP 429/418, venue rate-limit codes) ->
  ``errors.ExchangeUnavailable`` with ``retry_after=RETRY_AFTER_RATE_LIMITED`` (30 s).
* every other ``NetworkError`` (RequestTimeout, ExchangeNotAvailable, InvalidNonce, ...),
  any other ccxt ``BaseError``, and any other exception raised while talking to the venue
  (aiohttp/OS errors, a parse error on an unexpected body) -> ``errors.ExchangeUnavailable``
  with ``retry_after=RETRY_AFTER_TRANSIENT`` (5 s).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


@dataclass
class ValidationOutcome:
    """``verified`` False means no live check exists for the venue (store as ``unverified``).

    ``can_withdraw`` is True/False when the venue told us, None when unknown.
    """

    verified: bool
    can_withdraw: bool | None


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


class CcxtValidator:
    """Generic ccxt validation: one authenticated ``fetch_balance``.

    Subclasses override ``prepare()`` (client tweaks) and/or ``probe()`` (the private call).
    """

    def __init__(self, info: ExchangeInfo, settings: Settings) -> None:
        self.info = info
        self.settings = settings

    def client_config(self, credentials: dict[str, str]) -> dict[str, Any]:
        """Return the ccxt constructor config: credentials under ccxt names, timeout, no verbose.

        Raises ``errors.ValidationFailed`` for a field the venue does not accept, so that no
        client-supplied key can reach other ccxt options (``urls``, ``hostname``, proxies, ...).
        """
        problems = {name: "unknown field" for name in credentials if name not in self.info.allowed_credentials}
        problems.update(
            {name: "must be a non-empty string" for name, v in credentials.items() if not isinstance(v, str) or not v}
        )
        if problems:
            raise errors.ValidationFailed(fields=problems)
        config: dict[str, Any] = {
            "timeout": int(self.settings.exchange_timeout_ms),
            "enableRateLimit": True,
            "verbose": False,
        }
        for ours, value in credentials.items():
            config[OURS_TO_CCXT[ours]] = value
        return config

    def prepare(self, exchange: Any) -> None:
        """Minimise the work of ``probe``; the default skips ``fetch_currencies`` in load_markets."""
        exchange.has = {**exchange.has, "fetchCurrencies": False}
        exchange.options["fetchCurrencies"] = False

    async def probe(self, exchange: Any) -> ValidationOutcome:
        """Make the cheap private call; return the outcome or let the ccxt error propagate."""
        await exchange.fetch_balance()
        return ValidationOutcome(verified=True, can_withdraw=None)

    def build(self, credentials: dict[str, str]) -> Any:
        """Return a configured ``ccxt.async_support`` client (base URL overridden if configured)."""
        import ccxt.async_support as ccxt_async

        exchange = getattr(ccxt_async, self.info.id)(self.client_config(credentials))
        exchange.verbose = False
        exchange.logger = ccxt_log
        base_url = self.settings.exchange_base_urls.get(self.info.id)
        if base_url:
            exchange.urls = {**exchange.urls, "api": rebase_urls(exchange.urls.get("api"), base_url)}
        self.prepare(exchange)
        return exchange

    async def run(self, credentials: dict[str, str]) -> ValidationOutcome:
        """Return the outcome of a live check.

        Raises ``errors.InvalidCredentials`` or ``errors.ExchangeUnavailable`` (see module doc),
        ``errors.ValidationFailed`` for fields the venue does not accept.
        """
        if not credentials:
            return ValidationOutcome(verified=False, can_withdraw=None)  # nothing to verify
        exchange = self.build(credentials)
        try:
            try:
                return await self.probe(exchange)
            finally:
                await self._close(exchange)
        except Exception as exc:  # noqa: BLE001 - nothing from ccxt may escape unclassified
            error = self.classify(exc)
        # Raised outside the except block so that the ccxt exception (whose message holds the
        # signed URL and the raw body) is neither chained as __cause__ nor as __context__.
        raise error

    def classify(self, exc: BaseException) -> errors.DomainError:
        """Return the domain error for an exception raised by ccxt; logs the class name only."""
        import ccxt.async_support as ccxt_async

        name = type(exc).__name__
        if isinstance(exc, ccxt_async.AuthenticationError):
            log.info("%s rejected credentials (%s)", self.info.id, name)
            return errors.InvalidCredentials(INVALID_MESSAGE)
        # In ccxt 4.5 RateLimitExceeded is a sibling of DDoSProtection (both NetworkError).
        if isinstance(exc, (ccxt_async.DDoSProtection, ccxt_async.RateLimitExceeded)):
            log.warning("%s rate limited (%s)", self.info.id, name)
            return errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_RATE_LIMITED)
        log.warning("%s validation failed (%s)", self.info.id, name)
        return errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_TRANSIENT)

    async def _close(self, exchange: Any) -> None:
        """Close the client's HTTP session; never raises."""
        try:
            await exchange.close()
        except Exception as exc:  # closing must never mask the outcome
            log.debug("%s close failed (%s)", self.info.id, type(exc).__name__)


class BinanceValidator(CcxtValidator):
    """Binance: ``GET /api/v3/account`` (no market load) + ``/sapi/v1/account/apiRestrictions``."""

    def prepare(self, exchange: Any) -> None:
        super().prepare(exchange)
        exchange.options["fetchMarkets"] = {"types": ["spot"]}

    async def probe(self, exchange: Any) -> ValidationOutcome:
        account = await exchange.private_get_account()
        restrictions = await exchange.sapi_get_account_apirestrictions()
        enabled = restrictions.get("enableWithdrawals") if isinstance(restrictions, dict) else None
        if enabled is None and isinstance(account, dict):
            enabled = account.get("canWithdraw")  # account-level flag; the key-level one is preferred
        return ValidationOutcome(verified=True, can_withdraw=None if enabled is None else bool(enabled))


class OkxValidator(CcxtValidator):
    """OKX family: ``GET /api/v5/account/config`` (signed, needs the passphrase).

    Its ``perm`` field ("read_only,trade,withdraw") tells whether the key can withdraw.
    """

    async def probe(self, exchange: Any) -> ValidationOutcome:
        response = await exchange.private_get_account_config()
        data = response.get("data") if isinstance(response, dict) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        perm = first.get("perm")
        can_withdraw = None if not isinstance(perm, str) else "withdraw" in {p.strip() for p in perm.split(",")}
        return ValidationOutcome(verified=True, can_withdraw=can_withdraw)


# Venue id -> validator class; ccxt venues not listed use CcxtValidator.
VALIDATORS: dict[str, type[CcxtValidator]] = {
    "binance": BinanceValidator,
    "okx": OkxValidator,
    "myokx": OkxValidator,
    "okxus": OkxValidator,
}

# catalogue "validator" value -> default class for that kind
_KINDS: dict[str, type[CcxtValidator]] = {"ccxt": CcxtValidator}


def validator_for(info: ExchangeInfo, settings: Settings) -> CcxtValidator | None:
    """Return the validator instance for ``info``, or None if the venue has no validator."""
    kind = _KINDS.get(info.validator) if info.validator else None
    if kind is None:
        return None
    return VALIDATORS.get(info.id, kind)(info, settings)


async def validate_async(info: ExchangeInfo, credentials: dict[str, str], settings: Settings) -> ValidationOutcome:
    """Check ``credentials`` (our field names, already cleaned) against the venue.

    Returns ``ValidationOutcome(verified=False, can_withdraw=None)`` without any network
    call when the venue has no validator. Raises ``errors.InvalidCredentials`` when the
    venue rejects them and ``errors.ExchangeUnavailable(retry_after=...)`` when it cannot
    tell (network, rate limit, timeout, unexpected answer), and ``errors.ValidationFailed``
    for a field the venue does not accept. A key that can withdraw is
    reported through ``can_withdraw``, never raised here.
    """
    validator = validator_for(info, settings)
    if validator is None:
        return ValidationOutcome(verified=False, can_withdraw=None)
    return await validator.run(dict(credentials))


def validate(info: ExchangeInfo, credentials: dict[str, str], settings: Settings) -> ValidationOutcome:
    """Synchronous ``validate_async``: same return value and exceptions.

    Uses ``asyncio.run`` in the calling thread; if that thread already runs an event loop,
    runs it in a short-lived separate thread instead.
    """
    try:
        asyncio.get_running_loop()
        loop_running = True
    except RuntimeError:
        loop_running = False
    if not loop_running:
        return asyncio.run(validate_async(info, credentials, settings))

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(validate_async(info, credentials, settings))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="strongroom-validate", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
