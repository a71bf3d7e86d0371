"""The exchange gateway: every live exchange call of the process goes through one ``ExchangeGateway``.

Used by credential validation (``validate``), by balances (``fetch_balance``, ``fetch_tickers``,
``fetch_prices``) and by trading (``market_rules``, ``create_order``, ``fetch_order``, ``cancel_order``,
``cancel_all_orders``, ``fetch_open_orders``, ``fetch_closed_orders``: see ``strongroom.exchanges.orders``; spot markets of the
venues whose ``Venue.trading`` is set, Binance and the OKX family). All methods are coroutines run on the caller's event loop: no thread is held
for a call (only building a ccxt client, ~2 ms of CPU and no I/O, runs in a worker thread).

Efficiency, per process:

* **Client pool.** One ccxt client per (venue, credentials) is reused for
  ``exchange_client_ttl_seconds`` (a TTL + LRU cache of at most ``MAX_CLIENTS``), so a second
  call on the same key reuses its HTTP connection. Credentials are keyed by an HMAC under a
  per-process random key, never stored as such. An evicted client is closed in the background
  once no call uses it; a client whose key the venue rejected is dropped at once.
* **Per-venue limits.** At most ``exchange_concurrency_per_venue`` live calls per venue at once,
  and a per-venue request budget (``exchange_requests_per_second``, default ccxt's ``rateLimit``
  for the venue, with one second of burst) that only waits when the venue's budget is spent.
  ccxt's own limiter is off: it sleeps between two requests of one client even when idle.
  Waiting for either longer than the exchange timeout is ``ExchangeUnavailable``.
* **Shared public data.** Each venue has one public client whose markets (loaded once per client
  lifetime) are shared with every private client of the venue, and whose tickers are cached for
  ``exchange_price_ttl_seconds`` for every account of the venue (one request at a time per venue).
* **No sleeps on the request path.** Clients are never closed on the request path (ccxt's
  ``close()`` used to sleep 250 ms); ``aclose()`` closes them all at shutdown.

One gateway serves one event loop at a time (the app's lifespan awaits ``aclose()``; so must any
other owner of a loop, e.g. ``asyncio.run``, before the loop ends). Used from another loop, it drops
the old loop's clients (closing them there if that loop still runs) and starts afresh. Errors: see ``strongroom.exchanges.client`` (never a ccxt message).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import anyio.to_thread
from aiolimiter import AsyncLimiter
from cachetools import TTLCache

from strongroom import errors
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.exchanges.client import (
    RETRY_AFTER_RATE_LIMITED,
    RETRY_AFTER_TRANSIENT,
    UNAVAILABLE_MESSAGE,
    UNKNOWN_SYMBOL_MESSAGE,
    build_client,
    classify,
    classify_order,
    close_client,
    load_ccxt,
)
from strongroom.exchanges.orders import MarketRules, OrderSpec, OrderState
from strongroom.exchanges.outcomes import AssetBalance, ValidationOutcome
from strongroom.exchanges.venues import Venue, venue_for
from strongroom.metrics import Metrics
from strongroom.settings import Settings

log = logging.getLogger("strongroom.exchanges")

T = TypeVar("T")

MAX_CLIENTS = 1024  # pooled ccxt clients per process (each holds a small aiohttp session)
MIN_BURST = 4.0  # the per-venue budget always allows a few requests at once (one call makes up to 3)
CLOSE_GRACE_SECONDS = 0.25  # after closing every client at shutdown, let their sockets finish closing
PUBLIC = "public"  # the pool key of a venue's public client

__all__ = ["AssetBalance", "ExchangeGateway", "MarketRules", "OrderSpec", "OrderState", "ValidationOutcome"]


@dataclass(eq=False)
class _Client:
    """A pooled ccxt client. ``busy`` counts calls using it; a retired client closes when idle."""

    key: tuple[str, str]
    exchange: Any
    venue: Venue
    busy: int = 0
    retired: bool = False
    markets_loaded: bool = False


class _ClientCache(TTLCache[tuple[str, str], _Client]):
    """A TTL + LRU cache that hands every client it evicts (expired or least recently used) to ``retire``."""

    def __init__(self, maxsize: int, ttl: float, retire: Callable[[_Client], None]) -> None:
        super().__init__(maxsize=maxsize, ttl=ttl)
        self._retire = retire

    def popitem(self) -> tuple[tuple[str, str], _Client]:
        key, client = super().popitem()
        self._retire(client)
        return key, client

    def expire(self, time: float | None = None) -> list[tuple[tuple[str, str], _Client]]:
        expired = list(super().expire(time))
        for _, client in expired:
            self._retire(client)
        return expired


@dataclass(eq=False)
class _Lane:
    """One venue's limits: a slot per live call, a request budget, one markets load at a time."""

    slots: asyncio.Semaphore
    budget: AsyncLimiter
    markets_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(eq=False)
class _LoopState:
    """Everything bound to one event loop: pooled clients (aiohttp sessions), limits, running tasks."""

    loop: asyncio.AbstractEventLoop
    clients: _ClientCache = field(init=False)
    lanes: dict[str, _Lane] = field(default_factory=dict)
    price_loads: dict[str, asyncio.Task[dict[str, Decimal]]] = field(default_factory=dict)
    closing: set[asyncio.Task[None]] = field(default_factory=set)


class ExchangeGateway:
    """Live exchange calls through pooled ccxt clients (see the module doc). Build one per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._salt = os.urandom(32)
        self._state: _LoopState | None = None
        self._prices: TTLCache[str, dict[str, Decimal]] = TTLCache(
            maxsize=MAX_CLIENTS, ttl=settings.exchange_price_ttl_seconds
        )
        self.clients_built = 0  # ccxt clients built so far (tests and the bench read it)
        self.metrics: Metrics | None = None  # set by the core: calls by venue, operation and outcome

    # --- public API ----------------------------------------------------------------------------

    async def validate(self, info: ExchangeInfo, credentials: Mapping[str, str]) -> ValidationOutcome:
        """Check ``credentials`` (our field names, already cleaned) with the venue.

        Returns ``ValidationOutcome(verified=False, can_withdraw=None)`` without any network call for
        venues without live support (or no credentials). A key that can withdraw is reported through
        ``can_withdraw``, never raised here. Raises ``errors.InvalidCredentials`` (the venue rejected
        them), ``errors.ExchangeUnavailable(retry_after=...)`` (network, rate limit, timeout, busy,
        unexpected answer) and ``errors.ValidationFailed`` (a field the venue does not accept).
        """
        venue = venue_for(info)
        if venue is None or not credentials:
            return ValidationOutcome(verified=False, can_withdraw=None)
        return await self._private_call(
            info, venue, credentials, venue.probe, cost=venue.probe_requests, markets=venue.probe_needs_markets,
            label="validate",
        )

    async def fetch_balance(
        self, info: ExchangeInfo, credentials: Mapping[str, str], account_type: str
    ) -> dict[str, AssetBalance]:
        """Return the account's balances per asset (free, used, total as exact Decimals), sorted, empty ones left out.

        ``account_type`` is one of the venue's account types (spot, margin, swap, future, ...). Raises
        ``errors.ExchangeNotSupported`` (no live support for the venue), ``errors.ValidationFailed``
        (account type), ``errors.InvalidCredentials``, ``errors.ExchangeUnavailable``.
        """
        venue = self._live_venue(info)
        params = venue.balance_params(account_type)

        async def read(exchange: Any) -> dict[str, AssetBalance]:
            return venue.parse_balance(await venue.read_balance(exchange, params))

        return await self._private_call(info, venue, credentials, read, cost=1, markets=True, label="balance")

    async def fetch_tickers(self, info: ExchangeInfo) -> dict[str, Decimal]:
        """Return the venue's last price per unified symbol (``"BTC/USDT"``), symbols without a price left out.

        Cached for ``exchange_price_ttl_seconds`` and shared by every caller (one load at a time per
        venue). Raises ``errors.ExchangeNotSupported`` and ``errors.ExchangeUnavailable``.
        """
        cached = self._prices.get(info.id)
        if cached is not None:
            return dict(cached)
        venue = self._live_venue(info)
        state = self._current()
        task = state.price_loads.get(info.id)
        if task is None:
            task = state.loop.create_task(self._load_prices(state, info, venue))
            state.price_loads[info.id] = task
            task.add_done_callback(lambda done: self._price_load_done(state, info.id, done))
        # shielded: a caller that gives up does not cancel the load the others wait for
        return dict(await asyncio.shield(task))

    async def fetch_prices(self, info: ExchangeInfo, symbols: Iterable[str]) -> dict[str, Decimal]:
        """Return the last price of each of ``symbols`` that has one (from ``fetch_tickers``'s cache)."""
        tickers = await self.fetch_tickers(info)
        return {symbol: tickers[symbol] for symbol in symbols if symbol in tickers}

    # --- orders (see strongroom.exchanges.orders for the types and the errors) -------------------

    def supports_trading(self, info: ExchangeInfo) -> bool:
        """Return whether orders can go through this venue (no network call)."""
        venue = venue_for(info)
        return venue is not None and venue.trading

    async def market_rules(self, info: ExchangeInfo, symbol: str) -> MarketRules:
        """Return the precision and minimums of ``symbol`` (ccxt form, "BTC/USDT") from the venue's spot markets.

        Markets are loaded once per public client lifetime and shared. Raises ``errors.ValidationFailed``
        (``fields={"symbol": ...}``) for a symbol the venue does not list, ``errors.NotSupported`` /
        ``errors.ExchangeNotSupported`` for a venue without trading, ``errors.ExchangeUnavailable``.
        """
        venue = self._trading_venue(info)
        state = self._current()
        error: errors.DomainError
        started = time.monotonic()
        try:
            public = await self._client(state, info, venue, {})
            with self._using(state, public):
                if not public.markets_loaded:
                    async with self._slot(state, info, public, venue.market_requests):
                        await self._ensure_markets(state, info, public)
                rules = venue.market_rules(public.exchange, symbol)
        except Exception as exc:  # noqa: BLE001
            error = classify(exc, info.id)
            self._observe(info.id, "markets", error.code, started)
        else:
            if rules is None:
                raise errors.ValidationFailed(f"{symbol} is not a market of {info.name}",
                                              fields={"symbol": UNKNOWN_SYMBOL_MESSAGE})
            return rules
        raise error

    async def create_order(self, info: ExchangeInfo, credentials: Mapping[str, str], spec: OrderSpec) -> OrderState:
        """Place ``spec`` on the venue; return the order as the venue answered it. Never retried inside.

        Raises ``errors.OrderOutcomeUnknown`` when the answer was lost (the order may exist: look it up by
        its client order id, never send it again blindly), ``errors.InsufficientFunds``,
        ``errors.OrderRejected``, ``errors.ValidationFailed`` (``symbol``, ``client_order_id``, a limit order
        without a price ...), ``errors.InvalidCredentials``, ``errors.ExchangeUnavailable`` (nothing was sent
        or the venue refused it for its rate limit), ``errors.NotSupported`` / ``errors.ExchangeNotSupported``.
        """
        venue = self._trading_venue(info)
        _check_spec(spec)
        venue.check_client_order_id(spec.client_order_id)

        async def place(exchange: Any) -> OrderState:
            try:
                return await venue.create_order(exchange, spec)
            except errors.DomainError:
                raise  # refused before anything was sent (the market's rules)
            except Exception as exc:  # noqa: BLE001 - classified by _placing: the order may have been sent
                raise _PlacementFailed(exc) from None

        return await self._private_call(info, venue, credentials, place, cost=venue.create_requests, markets=True,
                                        label="create_order", classifier=_placing)

    async def fetch_order(
        self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str, *,
        exchange_order_id: str | None = None, client_order_id: str | None = None,
    ) -> OrderState | None:
        """Return the order by its venue id (else by its client order id), or None if the venue does not know it.

        Raises ``errors.ValidationFailed`` (neither id given; unknown symbol), ``errors.InvalidCredentials``,
        ``errors.ExchangeUnavailable``, ``errors.NotSupported`` / ``errors.ExchangeNotSupported``.
        """
        venue = self._trading_venue(info)
        if exchange_order_id is None and client_order_id is None:
            raise errors.ValidationFailed("an order id or a client order id is needed",
                                          fields={"exchange_order_id": "required without client_order_id"})

        async def read(exchange: Any) -> OrderState | None:
            return await venue.fetch_order(exchange, symbol, exchange_order_id, client_order_id)

        return await self._private_call(info, venue, credentials, read, cost=1, markets=True, label="fetch_order",
                                        classifier=classify_order)

    async def cancel_order(
        self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str, exchange_order_id: str
    ) -> OrderState:
        """Cancel the order; return its state afterwards (an order that closed meanwhile is returned as it is).

        Raises ``errors.NotFound`` (the venue does not know it), ``errors.OrderRejected`` (the venue refuses
        to cancel an order still open), ``errors.InvalidCredentials``, ``errors.ExchangeUnavailable``, ...
        """
        venue = self._trading_venue(info)

        async def cancel(exchange: Any) -> OrderState:
            return await venue.cancel_order(exchange, symbol, exchange_order_id)

        return await self._private_call(info, venue, credentials, cancel, cost=venue.cancel_requests, markets=True,
                                        label="cancel_order", classifier=classify_order)

    async def cancel_all_orders(
        self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str | None = None
    ) -> list[OrderState]:
        """Cancel every open order (of ``symbol``, else of every market), one ``cancel_order`` each; return
        their states afterwards (orders that closed or vanished meanwhile are left out).

        Stops at the first other failure, raising it as ``cancel_order`` does (the cancels before it stand).
        """
        done: list[OrderState] = []
        for order in await self.fetch_open_orders(info, credentials, symbol):
            try:
                state = await self.cancel_order(info, credentials, order.symbol, order.exchange_order_id)
            except errors.NotFound:
                continue
            if state.status == "canceled":
                done.append(state)
        return done

    async def fetch_open_orders(
        self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str | None = None
    ) -> list[OrderState]:
        """Return the open orders of ``symbol`` (None: of every market). Raises as ``fetch_order``."""
        venue = self._trading_venue(info)

        async def read(exchange: Any) -> list[OrderState]:
            return await venue.fetch_open_orders(exchange, symbol)

        return await self._private_call(info, venue, credentials, read, cost=1, markets=True,
                                        label="fetch_open_orders", classifier=classify_order)

    async def fetch_closed_orders(
        self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str
    ) -> list[OrderState]:
        """Return the recent orders of ``symbol`` no longer open (filled, canceled, expired, rejected), as the
        venue keeps them. Raises as ``fetch_order``."""
        venue = self._trading_venue(info)

        async def read(exchange: Any) -> list[OrderState]:
            return await venue.fetch_closed_orders(exchange, symbol)

        return await self._private_call(info, venue, credentials, read, cost=1, markets=True,
                                        label="fetch_closed_orders", classifier=classify_order)

    @property
    def pooled_clients(self) -> int:
        """Return how many ccxt clients the pool holds now (public ones included)."""
        state = self._state
        if state is None:
            return 0
        state.clients.expire()
        return len(state.clients)

    async def aclose(self) -> None:
        """Close every pooled client (one short grace period for all). The gateway stays usable afterwards."""
        state, self._state = self._state, None
        if state is None:
            return
        if state.loop is not asyncio.get_running_loop():
            self._abandon(state)
            return
        for task in state.price_loads.values():
            task.cancel()
        clients = _live_clients(state)
        closing = [close_client(c.exchange, c.venue.info.id) for c in clients]
        pending = [*closing, *state.closing]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            await asyncio.sleep(CLOSE_GRACE_SECONDS)

    # --- calls ---------------------------------------------------------------------------------

    def _live_venue(self, info: ExchangeInfo) -> Venue:
        venue = venue_for(info)
        if venue is None:
            raise errors.ExchangeNotSupported(f"{info.name} cannot be reached live")
        return venue

    def _trading_venue(self, info: ExchangeInfo) -> Venue:
        venue = self._live_venue(info)
        if not venue.trading:
            raise errors.NotSupported(f"trading on {info.name} is not supported")
        return venue

    async def _private_call(
        self,
        info: ExchangeInfo,
        venue: Venue,
        credentials: Mapping[str, str],
        operation: Callable[[Any], Awaitable[T]],
        *,
        cost: int,
        markets: bool,
        label: str = "call",
        classifier: Callable[[BaseException, str], errors.DomainError] = classify,
    ) -> T:
        """Run ``operation`` on the pooled client of these credentials, within the venue's limits.

        Raises the domain error ``classifier`` makes of what failed (never a ccxt exception); drops the
        client if the venue rejected the credentials.
        """
        state = self._current()
        key = (info.id, self._fingerprint(credentials))
        error: errors.DomainError
        started = time.monotonic()
        try:
            client = await self._client(state, info, venue, credentials)
            with self._using(state, client):
                async with self._slot(state, info, client, cost):
                    if markets:
                        await self._share_markets(state, info, venue, client)
                    result = await operation(client.exchange)
            self._observe(info.id, label, "ok", started)
            return result
        except Exception as exc:  # noqa: BLE001 - nothing from ccxt may escape unclassified
            error = classifier(exc, info.id)
            self._observe(info.id, label, error.code, started)
            if isinstance(error, errors.InvalidCredentials):
                self._discard(state, key)
        # Raised outside the except block so that the ccxt exception (whose message holds the
        # signed URL and the raw body) is neither chained as __cause__ nor as __context__.
        raise error

    def _observe(self, venue: str, operation: str, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.exchange_call(venue, operation, outcome, time.monotonic() - started)

    async def _load_prices(self, state: _LoopState, info: ExchangeInfo, venue: Venue) -> dict[str, Decimal]:
        error: errors.DomainError
        started = time.monotonic()
        try:
            public = await self._client(state, info, venue, {})
            with self._using(state, public):
                cost = 1 + (0 if public.markets_loaded else venue.market_requests)
                async with self._slot(state, info, public, cost):
                    await self._ensure_markets(state, info, public)
                    tickers = await public.exchange.fetch_tickers()
        except Exception as exc:  # noqa: BLE001
            error = classify(exc, info.id)
            self._observe(info.id, "tickers", error.code, started)
        else:
            self._observe(info.id, "tickers", "ok", started)
            prices: dict[str, Decimal] = {}
            for symbol, ticker in sorted(tickers.items()):
                price = venue.ticker_price(ticker) if isinstance(ticker, Mapping) else None
                if price is not None:
                    prices[str(symbol)] = price
            self._prices[info.id] = prices
            return prices
        raise error

    @staticmethod
    def _price_load_done(state: _LoopState, venue_id: str, task: asyncio.Task[dict[str, Decimal]]) -> None:
        state.price_loads.pop(venue_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, so that a load nobody waits for any more logs nothing

    async def _share_markets(self, state: _LoopState, info: ExchangeInfo, venue: Venue, client: _Client) -> None:
        """Give ``client`` the venue's markets, loading them once through the venue's public client."""
        public = await self._client(state, info, venue, {})
        with self._using(state, public):
            await self._ensure_markets(state, info, public)
        if client.exchange.markets is not public.exchange.markets:
            client.exchange.set_markets_from_exchange(public.exchange)

    async def _ensure_markets(self, state: _LoopState, info: ExchangeInfo, public: _Client) -> None:
        if public.markets_loaded:
            return
        async with self._lane(state, info, public.exchange).markets_lock:
            if not public.markets_loaded:
                await public.exchange.load_markets()
                public.markets_loaded = True

    # --- pool ----------------------------------------------------------------------------------

    def _current(self) -> _LoopState:
        """Return the state of the running loop, starting afresh if the gateway was used from another loop."""
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:
            if state is not None:
                self._abandon(state)
            state = self._state = _LoopState(loop)
            state.clients = _ClientCache(MAX_CLIENTS, self.settings.exchange_client_ttl_seconds,
                                         functools.partial(self._retire, state))
        return state

    def _fingerprint(self, credentials: Mapping[str, str]) -> str:
        if not credentials:
            return PUBLIC
        material = json.dumps(sorted(credentials.items()), separators=(",", ":")).encode()
        return hmac.new(self._salt, material, hashlib.sha256).hexdigest()

    async def _client(
        self, state: _LoopState, info: ExchangeInfo, venue: Venue, credentials: Mapping[str, str]
    ) -> _Client:
        """Return the pooled client for these credentials (``{}``: the venue's public client), building it if needed.

        Raises ``errors.ValidationFailed`` for fields the venue does not accept.
        """
        state.clients.expire()
        key = (info.id, self._fingerprint(credentials))
        client = state.clients.get(key)
        if client is not None:
            return client
        await load_ccxt()
        exchange = await anyio.to_thread.run_sync(build_client, info, dict(credentials), self.settings)
        venue.prepare(exchange)
        client = state.clients.get(key)  # another call may have built it meanwhile (ours never opened: no session)
        if client is None:
            client = _Client(key, exchange, venue)
            state.clients[key] = client
            self.clients_built += 1
        return client

    @contextmanager
    def _using(self, state: _LoopState, client: _Client) -> Iterator[_Client]:
        """Mark ``client`` busy for the block, so that an eviction meanwhile defers its close."""
        client.busy += 1
        try:
            yield client
        finally:
            client.busy -= 1
            if client.retired and client.busy == 0:
                self._close_later(state, client)

    def _lane(self, state: _LoopState, info: ExchangeInfo, exchange: Any) -> _Lane:
        """Return the venue's limits, made from the settings (and ccxt's ``rateLimit``) on first use."""
        lane = state.lanes.get(info.id)
        if lane is None:
            rate = self.settings.exchange_requests_per_second or 1000.0 / max(float(exchange.rateLimit or 1000), 1.0)
            burst = max(rate, MIN_BURST)
            lane = state.lanes[info.id] = _Lane(
                asyncio.Semaphore(self.settings.exchange_concurrency_per_venue),
                AsyncLimiter(burst, time_period=burst / rate),
            )
        return lane

    @asynccontextmanager
    async def _slot(self, state: _LoopState, info: ExchangeInfo, client: _Client, cost: int) -> AsyncIterator[None]:
        """Hold one of the venue's call slots and spend ``cost`` requests of its budget.

        Raises ``errors.ExchangeUnavailable`` if either takes longer than the exchange timeout.
        """
        lane = self._lane(state, info, client.exchange)
        wait = self.settings.exchange_timeout_ms / 1000
        try:
            async with asyncio.timeout(wait):
                await lane.slots.acquire()
        except TimeoutError:
            log.warning("%s: every call slot stayed busy for %.1f s", info.id, wait)
            raise errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_TRANSIENT) from None
        try:
            try:
                async with asyncio.timeout(wait):
                    await lane.budget.acquire(min(float(cost), lane.budget.max_rate))
            except TimeoutError:
                log.warning("%s: request budget spent for %.1f s", info.id, wait)
                raise errors.ExchangeUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_RATE_LIMITED) from None
            yield
        finally:
            lane.slots.release()

    def _retire(self, state: _LoopState, client: _Client) -> None:
        """Called for each client the pool evicts: close it now if idle, else when its last call ends."""
        client.retired = True
        if client.busy == 0:
            self._close_later(state, client)

    def _discard(self, state: _LoopState, key: tuple[str, str]) -> None:
        client = state.clients.pop(key, None)
        if client is not None:
            self._retire(state, client)

    def _close_later(self, state: _LoopState, client: _Client) -> None:
        """Close ``client`` in the background on its own loop (from any thread); never on the request path."""
        closing = close_client(client.exchange, client.venue.info.id)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is state.loop:
            task = state.loop.create_task(closing)
            state.closing.add(task)
            task.add_done_callback(state.closing.discard)
        elif state.loop.is_running():
            asyncio.run_coroutine_threadsafe(closing, state.loop)
        else:
            closing.close()  # that loop has ended: its sockets went with it

    def _abandon(self, state: _LoopState) -> None:
        """Forget another loop's clients, closing them on that loop if it still runs (in another thread)."""
        clients = _live_clients(state)  # (expired ones are handed to _close_later by the cache)
        for client in clients:
            self._close_later(state, client)
        if state.loop.is_running():
            for task in list(state.price_loads.values()):
                state.loop.call_soon_threadsafe(task.cancel)
        log.debug("dropped %d exchange clients of another event loop", len(clients))


def _live_clients(state: _LoopState) -> list[_Client]:
    """Return the clients the pool of ``state`` holds (expired ones are already closing)."""
    state.clients.expire()
    found = (state.clients.get(key) for key in list(state.clients))
    return [client for client in found if client is not None]


class _PlacementFailed(Exception):
    """What the placement itself raised (as opposed to what failed before it: a client, the markets, a slot)."""

    def __init__(self, original: Exception) -> None:
        super().__init__(type(original).__name__)
        self.original = original


def _placing(exc: BaseException, venue: str) -> errors.DomainError:
    """Classify a ``create_order`` failure: a lost answer only if the placement itself failed."""
    if isinstance(exc, _PlacementFailed):
        return classify_order(exc.original, venue, placing=True)
    return classify_order(exc, venue)


def _check_spec(spec: OrderSpec) -> None:
    """Raise ``errors.ValidationFailed`` naming each field of ``spec`` no venue would take."""
    problems: dict[str, str] = {}
    if spec.side not in ("buy", "sell"):
        problems["side"] = "buy or sell"
    if spec.type not in ("limit", "market"):
        problems["type"] = "limit or market"
    if not spec.amount.is_finite() or spec.amount <= 0:
        problems["amount"] = "a positive number"
    if spec.type == "limit" and (spec.price is None or not spec.price.is_finite() or spec.price <= 0):
        problems["price"] = "a positive number (limit orders)"
    if spec.type == "market" and spec.price is not None:
        problems["price"] = "not for market orders"
    if spec.time_in_force not in (None, "GTC", "IOC", "FOK"):
        problems["time_in_force"] = "GTC, IOC or FOK"
    if spec.post_only and spec.type != "limit":
        problems["post_only"] = "limit orders only"
    if problems:
        raise errors.ValidationFailed("invalid order", fields=problems)
