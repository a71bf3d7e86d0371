"""Orders through stored credentials, under risk policies, without double orders (issue 19).

How an order goes (:meth:`TradingService.submit`): one transaction before the venue is called, one after, each
in one worker-thread hop, with Core statements built once (no ORM unit of work on this path).

1. On the event loop, before any transaction: the venue's market rules (amount step and minimums, price step)
   and, when the account's policies needed them last time, its tickers (the balances capability's valuation
   gives the quote's USD price). Which venue and whether prices are needed is remembered per account (a
   hint: the first order on an account in a process learns it through an admission that writes nothing).
2. The admission, one transaction in a worker thread: a conditional UPDATE of the account policy's
   ``revision`` first (the account's order lock: a row lock on PostgreSQL, the write lock on SQLite; it
   returns the account's policy), then in one statement the account, the order with this client order id
   and the counts of open orders and orders of the last minute. The caller needs scope ``trade`` (implied by
   nothing) and must see the account (a key bound to other accounts gets NotFound); only then is anything
   fetched in step 1 used (an error fetching it is raised here, not before). The ``client_order_id`` (or
   ``Idempotency-Key``) is the idempotency key: a row with it already on the account is answered again (same
   request: that order; another request: Conflict), never sent again. The account must be ``active``; the
   venue's rules are checked, the policies (the key's narrows the account's) and the counts, and the order is
   inserted ``pending`` with a delayed reconciliation job (``trading.reconcile``) and its audit row. A
   refusal is RiskPolicyRefused naming the rule, audited; nothing is written. When the hint was wrong (the
   policies now need prices), the admission writes nothing and runs again with them.
3. ``create_order`` at the venue, never retried. Its answer updates the row (events ``order.created`` and
   ``order.filled`` / ``order.rejected`` in the same transaction). A lost answer (OrderOutcomeUnknown), an
   unreachable venue or any other failure leaves the row ``pending``: the reconciliation job (at once, and the
   delayed one in any case, even if this process dies) asks the venue by the client order id (``fetch_order``)
   and records what it finds; a request repeated meanwhile does the same inline. The order is never sent
   twice. When the gateway says nothing was sent (ExchangeUnavailable: the venue unreachable before the
   call, or refusing it for its rate limit), the pending row is deleted and the error raised: the same
   client order id may be sent again.

Reads (``get``, ``list``) bring the stored rows up to date with the venue first (``fetch_open_orders`` per
symbol, ``fetch_order`` for those gone from it): fills become ``closed`` with ``order.filled``. When the venue
cannot be reached, the stored state is answered. No secret and no venue text is ever stored, logged or raised.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import Numeric, Row, String, bindparam, cast, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom import events
from strongroom.audit.services import AuditService
from strongroom.balances import valuation
from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import AccountStatus, EventType
from strongroom.errors import (
    BadRequest,
    Conflict,
    DomainError,
    ExchangeNotSupported,
    ExchangeUnavailable,
    InvalidCredentials,
    NotFound,
    NotSupported,
    RiskPolicyRefused,
    ValidationFailed,
)
from strongroom.exchanges.catalogue import Catalogue, ExchangeInfo
from strongroom.exchanges.orders import (
    InsufficientFunds,
    MarketRules,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderSpec,
    OrderState,
)
from strongroom.exchanges.venues import venue_for
from strongroom.jobs import enqueue
from strongroom.models import ExchangeAccount, Order, TradingPolicy
from strongroom.pagination import MAX_ID, MAX_OFFSET_LIMIT, OffsetPage, Page, paginate, paginate_offset, valid_id
from strongroom.principal import Principal
from strongroom.scopes import READ, TRADE
from strongroom.trading import amounts
from strongroom.trading import policy as rules
from strongroom.trading.policies import PolicyBook, PolicyView, key_policy_of, policy_of_row, visible_account
from strongroom.trading.policy import Policy, Ticket
from strongroom.vault.services import Vault

log = logging.getLogger("strongroom.trading")

RECONCILE_KIND = "trading.reconcile"
RECONCILE_SAFETY_DELAY = 30.0  # the job enqueued with every order runs this long after it (a crash mid-call)
OPEN: tuple[str, ...] = ("pending", "open")
FINAL: tuple[str, ...] = ("closed", "canceled", "rejected", "expired")
SIDES = ("buy", "sell")
TYPES = ("limit", "market")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
ROUNDING = ("none", "down")
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
VENUE_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # what every venue accepts as is (OKX: 1-32 alphanumerics)
SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
AWAIT_STEP = 0.25  # seconds between looks at the venue while awaiting a close
MAX_ADMISSIONS = 4  # admissions of one order: the first may ask for the market's rules or prices (see _Needs)
MAX_HINTS = 10_000  # accounts whose venue and need of prices are remembered (_Hint)

# the tables of the order path, used with Core statements (no ORM unit of work on the hot path)
ORDERS = Order.__table__
POLICIES = TradingPolicy.__table__
ACCOUNTS = ExchangeAccount.__table__
ACCOUNT_COLUMNS = (ACCOUNTS.c.id, ACCOUNTS.c.public_id, ACCOUNTS.c.user_id, ACCOUNTS.c.exchange, ACCOUNTS.c.status,
                   ACCOUNTS.c.ciphertext, ACCOUNTS.c.nonce, ACCOUNTS.c.wrapped_dek, ACCOUNTS.c.kek_version)
# the placement's statements, built once (executed with their parameters: nothing is built per order)
_LOCK = (update(POLICIES).where(POLICIES.c.subject == bindparam("b_subject")).values(revision=POLICIES.c.revision)
         .returning(*POLICIES.c))  # the account's order lock, returning its policy
_MINE = ORDERS.c.account_id == bindparam("b_account")
_ACCOUNT = select(  # the account, its order with the client order id b_client, its open orders and orders since
    *ACCOUNT_COLUMNS,  # b_since (three index lookups, one statement)
    select(ORDERS.c.id).where(_MINE, ORDERS.c.client_order_id == bindparam("b_client"))
    .scalar_subquery().label("existing_id"),
    select(func.count()).select_from(ORDERS).where(_MINE, ORDERS.c.status.in_(OPEN))
    .scalar_subquery().label("open_orders"),
    select(func.count()).select_from(ORDERS).where(_MINE, ORDERS.c.created_epoch >= bindparam("b_since"))
    .scalar_subquery().label("last_minute"),
).where(ACCOUNTS.c.id == bindparam("b_account"))
_ORDER = select(ORDERS).where(ORDERS.c.id == bindparam("b_id"))
_INSERT_ORDER = insert(ORDERS).returning(ORDERS.c.id)
_TRANSITION = (update(ORDERS).where(ORDERS.c.id == bindparam("b_id"), ORDERS.c.status == bindparam("b_status"))
               .returning(*ORDERS.c))  # SET: the columns of the parameters given
# an open order's new fill, only if it is not behind the one stored (fills only grow: of two syncs that read the
# venue at different times, the one that read it later may commit first)
_FORWARD = _TRANSITION.where(cast(ORDERS.c.filled, Numeric) <= cast(bindparam("b_filled", type_=String), Numeric))


# --- the contract's values ------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRequest:
    """A new order as a caller asks for it: amounts and prices as decimal strings."""

    symbol: str  # ccxt form, BTC/USDT
    side: str
    type: str
    amount: str
    price: str | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None
    post_only: bool = False
    rounding: str = "none"


@dataclass(frozen=True)
class OrderView:
    """An order as stored (brought up to date with the venue by reads)."""

    id: int
    account_id: int
    client_order_id: str
    exchange_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str  # pending | open | closed | canceled | rejected | expired
    filled: Decimal
    average_price: Decimal | None
    fees: tuple[tuple[str, Decimal], ...]
    time_in_force: str | None
    post_only: bool
    key_id: str | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OrderQuery:
    """Which of an account's orders :meth:`TradingService.find_orders` answers (every field optional: all).

    ``statuses`` our statuses (pending, open, closed, canceled, rejected, expired); ``filled`` True: some of it
    filled, False: none; ``since``/``until`` bound when Strongroom accepted the order (epoch seconds, inclusive);
    ``ascending`` oldest first (default newest)."""

    order_id: int | None = None
    statuses: tuple[str, ...] | None = None
    filled: bool | None = None
    symbol: str | None = None
    since: float | None = None
    until: float | None = None
    ascending: bool = False


@dataclass(frozen=True)
class Submitted:
    """What a submit did: ``replayed`` (an order with this client order id existed: nothing was sent), and the
    order, ``pending`` when the venue's answer is not known yet (it is being reconciled)."""

    order: OrderView
    replayed: bool


class TradingGateway(Protocol):
    """What the service needs of ``strongroom.exchanges.gateway.ExchangeGateway``."""

    async def market_rules(self, info: ExchangeInfo, symbol: str) -> MarketRules: ...

    async def fetch_tickers(self, info: ExchangeInfo) -> dict[str, Decimal]: ...

    async def create_order(self, info: ExchangeInfo, credentials: Mapping[str, str], spec: OrderSpec) -> OrderState: ...

    async def fetch_order(self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str, *,
                          exchange_order_id: str | None = None,
                          client_order_id: str | None = None) -> OrderState | None: ...

    async def cancel_order(self, info: ExchangeInfo, credentials: Mapping[str, str], symbol: str,
                           exchange_order_id: str) -> OrderState: ...

    async def fetch_open_orders(self, info: ExchangeInfo, credentials: Mapping[str, str],
                                symbol: str | None = None) -> list[OrderState]: ...


# --- internals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """An account ready to trade on. ``credentials`` never leave memory."""

    id: int
    user_id: int
    info: ExchangeInfo
    credentials: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class _Admitted:
    account: _Account
    view: OrderView
    replay: bool  # an order with this client order id was there: the answer is that order
    request_hash: str | None  # the stored order's (a replay is answered only for the same request)
    prices: bool  # the checks needed the venue's prices


@dataclass(frozen=True)
class _Hint:
    """What the last order on an account needed from the venue (its exchange never changes; whether its policies
    need prices may). Only a hint: the admission checks what it is given and asks again (_Needs) if it differs."""

    info: ExchangeInfo
    prices: bool


@dataclass(frozen=True)
class _Needs:
    """An admission that wrote nothing: it needs the market rules of ``info``'s venue (and its prices if
    ``prices``), which are fetched on the event loop, outside any transaction, before it runs again."""

    info: ExchangeInfo
    prices: bool


@dataclass(frozen=True)
class _Inputs:
    """What the event loop fetched for an admission: the venue's market rules and prices (None: not fetched), or
    the error fetching them raised (raised by the admission in its turn, after the account's own checks)."""

    info: ExchangeInfo | None = None
    market: MarketRules | DomainError | None = None
    prices: dict[str, Decimal] | DomainError | None = None


_AGAIN = None  # an admission that lost a race for the client order id: the next one answers that order


def venue_client_id(client_order_id: str) -> str:
    """Return the client order id sent to the venue for ours: itself when every venue takes it (1-32 letters and
    digits), else ``sr`` and 30 hex digits of its SHA-256 (the same every time: reconciliation finds it)."""
    if VENUE_CLIENT_ID.match(client_order_id):
        return client_order_id
    return "sr" + hashlib.sha256(client_order_id.encode()).hexdigest()[:30]


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _view(row: Any) -> OrderView:
    """The order a row holds (a model instance, a selected row or anything with the columns as attributes)."""
    return OrderView(
        id=row.id, account_id=row.account_id, client_order_id=row.client_order_id,
        exchange_order_id=row.exchange_order_id, symbol=row.symbol, side=row.side, type=row.type,
        amount=Decimal(row.amount), price=_dec(row.price), status=row.status, filled=Decimal(row.filled),
        average_price=_dec(row.average_price),
        fees=tuple((str(f["currency"]), Decimal(str(f["cost"]))) for f in row.fees or []),
        time_in_force=row.time_in_force, post_only=row.post_only, key_id=row.key_id, error_code=row.error_code,
        created_at=row.created_at, updated_at=row.updated_at)


def _event_data(view: OrderView) -> dict[str, Any]:
    return {"order_id": view.id, "account_id": view.account_id, "client_order_id": view.client_order_id,
            "exchange_order_id": view.exchange_order_id, "symbol": view.symbol, "side": view.side,
            "type": view.type, "amount": amounts.plain(view.amount),
            "price": None if view.price is None else amounts.plain(view.price), "status": view.status,
            "filled": amounts.plain(view.filled),
            "average_price": None if view.average_price is None else amounts.plain(view.average_price)}


def _events_for(before: str, after: str) -> list[EventType]:
    """The events a status change means (``pending`` to a venue status is also ``order.created``)."""
    found: list[EventType] = []
    if before == after:
        return found
    if before == "pending" and after != "rejected":
        found.append(EventType.ORDER_CREATED)
    if after == "closed":
        found.append(EventType.ORDER_FILLED)
    elif after in ("canceled", "expired"):
        found.append(EventType.ORDER_CANCELED)
    elif after == "rejected":
        found.append(EventType.ORDER_REJECTED)
    return found


def _request_hash(request: OrderRequest, client_order_id: str) -> str:
    """SHA-256 of the request's canonical form: the same order asked again hashes the same."""
    doc = {"symbol": request.symbol, "side": request.side, "type": request.type,
           "amount": amounts.plain(Decimal(request.amount)),
           "price": None if request.price is None else amounts.plain(Decimal(request.price)),
           "time_in_force": request.time_in_force, "post_only": request.post_only, "rounding": request.rounding,
           "client_order_id": client_order_id}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _needs_prices(request: OrderRequest, market: MarketRules, policies: tuple[Policy | None, Policy | None]) -> bool:
    """Whether a check needs the venue's last prices (notional, price band, a market order's minimum value); never
    without an account policy (the order is refused for that first)."""
    if policies[0] is None:
        return False
    return (request.type == "market" and market.min_cost is not None) or _policies_need_prices(policies)


def _policies_need_prices(policies: tuple[Policy | None, Policy | None]) -> bool:
    """Whether the policies (the account's, the key's) value orders (notional, price band); never without an
    account policy."""
    return policies[0] is not None and any(
        found is not None and (found.max_notional_usd is not None or found.price_band_percent is not None)
        for found in policies)


class _Columns:
    """An order's column values as attributes (what _view reads), for a row just inserted."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _transition(session: Session, order_id: int, status: str, values: dict[str, Any]) -> tuple[Row[Any], bool]:
    """UPDATE the order to ``values`` if it is still in ``status`` (compare-and-set), in ``session``'s transaction;
    return the order as it is afterwards and whether this changed it (events and audit rows are written only
    then). An open order staying open is updated only if its fill is not behind the stored one. Raises NotFound
    if the order is gone."""
    if status == "open" and values.get("status") == "open":
        row = session.execute(_FORWARD, {**values, "b_id": order_id, "b_status": status,
                                         "b_filled": values["filled"]}).first()
    else:
        row = session.execute(_TRANSITION, {**values, "b_id": order_id, "b_status": status}).first()
    if row is not None:
        return row, True
    row = session.execute(_ORDER, {"b_id": order_id}).first()
    if row is None:
        raise NotFound("order not found")
    return row, False


def _may_read_orders(principal: Principal) -> None:
    """Orders are read with ``read`` or ``trade`` (a trade-only key sees what it placed). Raises InsufficientScope."""
    if TRADE not in principal.scopes:
        principal.require(READ)


def _system_time() -> float:
    return time.time()


class TradingService:
    """The trading capability (:class:`strongroom.trading.interfaces.Trading`, whose docstrings are the contract):
    async; database work runs in worker threads, exchange calls on the event loop."""

    def __init__(self, db: Database, audit: AuditService, vault: Vault, catalogue: Catalogue,
                 gateway: TradingGateway, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self.audit = audit
        self.vault = vault
        self.catalogue = catalogue
        self.gateway = gateway
        self.clock: Callable[[], float] = clock or _system_time
        self.policies = PolicyBook(db, audit)
        self._hints: dict[int, _Hint] = {}  # account id -> what its last order needed (event loop only)

    # --- orders -----------------------------------------------------------------------------------

    async def submit(self, principal: Principal, account_id: int, request: OrderRequest, *,
                     idempotency_key: str | None = None, await_closed: float | None = None) -> Submitted:
        principal.require(TRADE)
        client_order_id = self._client_order_id(request.client_order_id, idempotency_key)
        request = self._checked(request)
        price = None if request.price is None else Decimal(request.price)
        fingerprint = _request_hash(request, client_order_id)
        hint = self._hints.get(account_id)
        for _ in range(MAX_ADMISSIONS):
            inputs = await self._inputs(hint, request)
            outcome = await anyio.to_thread.run_sync(functools.partial(
                self._admit, principal, account_id, request, client_order_id, fingerprint, price, inputs))
            if isinstance(outcome, _Admitted):
                break
            if outcome is not None:
                hint = _Hint(outcome.info, outcome.prices)
                self._remember(account_id, hint)
        else:
            raise Conflict("the order could not be admitted (the account changed meanwhile); try again")
        account = outcome.account
        if outcome.replay:
            return await self._replay(account, outcome.view, outcome.request_hash, fingerprint)
        if hint is None or hint.prices != outcome.prices:
            self._remember(account_id, _Hint(account.info, outcome.prices))
        view = await self._place(principal, account, outcome.view, request, outcome.view.amount, price)
        if await_closed and view.status in OPEN:
            view = await self._await_closed(account, view, await_closed)
        return Submitted(view, replayed=False)

    async def get(self, principal: Principal, account_id: int, order_id: int) -> OrderView:
        _may_read_orders(principal)
        account, row = await anyio.to_thread.run_sync(self._order_of, principal, account_id, order_id)
        if row.status in OPEN:
            await self._sync(account, [row])
            row = await anyio.to_thread.run_sync(self._reload, row.id)
        return row

    async def list_orders(self, principal: Principal, account_id: int, *, status: str = "open", symbol: str | None = None,
                   cursor: str | None = None, limit: int = 50) -> Page[OrderView]:
        _may_read_orders(principal)
        if status not in ("open", "closed"):
            raise ValidationFailed("status must be open or closed", fields={"status": "open or closed"})
        account, rows = await anyio.to_thread.run_sync(self._open_rows, principal, account_id, symbol)
        if rows:
            await self._sync(account, rows)
        return await anyio.to_thread.run_sync(functools.partial(
            self._page, account.id, OPEN if status == "open" else FINAL, symbol, cursor, limit))

    async def find_orders(self, principal: Principal, account_id: int, query: OrderQuery, *, offset: int = 0,
                          limit: int = 50) -> OffsetPage[OrderView]:
        _may_read_orders(principal)
        if not 1 <= limit <= MAX_OFFSET_LIMIT:
            raise ValidationFailed(f"limit must be between 1 and {MAX_OFFSET_LIMIT}",
                                   fields={"limit": f"between 1 and {MAX_OFFSET_LIMIT}"})
        if not 0 <= offset <= MAX_ID:
            raise ValidationFailed("offset must not be negative", fields={"offset": "0 or more"})
        account, rows = await anyio.to_thread.run_sync(self._open_rows, principal, account_id, query.symbol)
        if rows:
            await self._sync(account, rows)
        return await anyio.to_thread.run_sync(functools.partial(self._offset_page, account.id, query, offset, limit))

    async def cancel(self, principal: Principal, account_id: int, order_id: int) -> OrderView:
        principal.require(TRADE)
        account, row = await anyio.to_thread.run_sync(self._order_of, principal, account_id, order_id)
        if row.status == "pending":
            await self._sync(account, [row])
            row = await anyio.to_thread.run_sync(self._reload, row.id)
        if row.status == "pending":
            raise Conflict("the order's placement is not confirmed yet; try again shortly")
        if row.status in FINAL:
            raise Conflict(f"the order is already {row.status}")
        view = await self._cancel_one(principal, account, row)
        if view.status != "canceled":
            raise Conflict(f"the order is already {view.status}")
        return view

    async def cancel_all(self, principal: Principal, account_id: int, *, symbol: str | None = None) -> list[OrderView]:
        principal.require(TRADE)
        account, rows = await anyio.to_thread.run_sync(self._open_rows, principal, account_id, symbol)
        if rows:
            await self._sync(account, rows)
        account, rows = await anyio.to_thread.run_sync(self._open_rows, principal, account_id, symbol)
        canceled: list[OrderView] = []
        for row in rows:
            if row.status != "open":
                continue  # pending: its placement is being reconciled
            view = await self._cancel_one(principal, account, row)
            if view.status == "canceled":
                canceled.append(view)
        await anyio.to_thread.run_sync(functools.partial(
            self.audit.record_now, "order.cancel_all", "ok", principal=principal, target=f"account:{account.id}",
            details={"canceled": len(canceled), "symbol": symbol}))
        return canceled

    async def reconcile(self, order_id: int) -> str:
        row = await anyio.to_thread.run_sync(self._reload_or_none, order_id)
        if row is None:
            return "gone"
        if row.status != "pending":
            return row.status
        account = await anyio.to_thread.run_sync(self._account_of_order, row.account_id)
        if account is None:
            return "gone"
        state = await self.gateway.fetch_order(account.info, account.credentials, row.symbol,
                                               client_order_id=venue_client_id(row.client_order_id))
        if state is None:
            return "unknown"
        view = await anyio.to_thread.run_sync(self._apply, row, state, None)
        return view.status

    async def mark_not_placed(self, order_id: int) -> None:
        await anyio.to_thread.run_sync(self._not_placed, order_id)

    # --- policies ---------------------------------------------------------------------------------

    async def account_policy(self, principal: Principal, account_id: int) -> PolicyView:
        principal.require(READ)
        return await anyio.to_thread.run_sync(self.policies.read, principal, account_id, None)

    async def set_account_policy(self, principal: Principal, account_id: int, body: Mapping[str, object]) -> PolicyView:
        return await anyio.to_thread.run_sync(self.policies.write, principal, account_id, None, dict(body))

    async def key_policy(self, principal: Principal, key_id: str) -> PolicyView:
        principal.require(READ)
        return await anyio.to_thread.run_sync(self.policies.read, principal, None, key_id)

    async def set_key_policy(self, principal: Principal, key_id: str, body: Mapping[str, object]) -> PolicyView:
        return await anyio.to_thread.run_sync(self.policies.write, principal, None, key_id, dict(body))

    # --- checks -----------------------------------------------------------------------------------

    @staticmethod
    def _client_order_id(client_order_id: str | None, idempotency_key: str | None) -> str:
        if client_order_id is not None and idempotency_key is not None and client_order_id != idempotency_key:
            raise BadRequest("client_order_id and the Idempotency-Key header differ",
                             fields={"client_order_id": "differs from Idempotency-Key"})
        chosen = client_order_id if client_order_id is not None else idempotency_key
        if chosen is None:
            return "sr" + uuid.uuid4().hex[:30]
        if not CLIENT_ORDER_ID.match(chosen):
            raise ValidationFailed("client_order_id must be 1-64 letters, digits or . _ : / -",
                                   fields={"client_order_id": "1-64 of A-Z a-z 0-9 . _ : / -"})
        return chosen

    @staticmethod
    def _checked(request: OrderRequest) -> OrderRequest:
        """Return ``request`` with its decimals normalised; raise ValidationFailed naming the first bad field."""
        if not isinstance(request.symbol, str) or not SYMBOL.match(request.symbol):
            raise ValidationFailed("symbol must be BASE/QUOTE in upper case", fields={"symbol": "such as BTC/USDT"})
        if request.side not in SIDES:
            raise ValidationFailed("side must be buy or sell", fields={"side": "buy or sell"})
        if request.type not in TYPES:
            raise ValidationFailed("type must be limit or market", fields={"type": "limit or market"})
        if request.rounding not in ROUNDING:
            raise ValidationFailed("rounding must be none or down", fields={"rounding": "none or down"})
        if request.time_in_force is not None and request.time_in_force not in TIME_IN_FORCE:
            raise ValidationFailed("time_in_force must be GTC, IOC or FOK", fields={"time_in_force": "GTC, IOC or FOK"})
        amount = amounts.parse_decimal("amount", request.amount)
        price: Decimal | None = None
        if request.type == "limit":
            if request.price is None:
                raise ValidationFailed("a limit order needs a price", fields={"price": "required for limit"})
            price = amounts.parse_decimal("price", request.price)
        elif request.price is not None:
            raise ValidationFailed("a market order has no price", fields={"price": "not allowed for market"})
        if request.post_only and request.type != "limit":
            raise ValidationFailed("post_only is for limit orders", fields={"post_only": "limit orders only"})
        return OrderRequest(symbol=request.symbol, side=request.side, type=request.type, amount=amounts.plain(amount),
                            price=None if price is None else amounts.plain(price), time_in_force=request.time_in_force,
                            client_order_id=request.client_order_id, post_only=bool(request.post_only),
                            rounding=request.rounding)

    async def _inputs(self, hint: _Hint | None, request: OrderRequest) -> _Inputs:
        """Fetch what the admission will need as ``hint`` says (nothing without one): the market's rules, and the
        venue's prices if the account's policies needed them last time or this is a market order. An error is
        kept for the admission to raise after the account's checks (a caller who may not see the account learns
        nothing of it)."""
        if hint is None:
            return _Inputs()
        try:
            market = await self.gateway.market_rules(hint.info, request.symbol)
        except DomainError as exc:
            return _Inputs(hint.info, exc)
        if not (hint.prices or (request.type == "market" and market.min_cost is not None)):
            return _Inputs(hint.info, market)
        try:
            return _Inputs(hint.info, market, await self.gateway.fetch_tickers(hint.info))
        except DomainError as exc:
            return _Inputs(hint.info, market, exc)

    def _remember(self, account_id: int, hint: _Hint) -> None:
        if len(self._hints) >= MAX_HINTS and account_id not in self._hints:
            self._hints.clear()  # a bound, not a policy: hints are re-learnt by one extra admission each
        self._hints[account_id] = hint

    # --- database work (worker threads) -----------------------------------------------------------

    def _tradable(self, account: Any) -> _Account:
        """The account (a model instance or a selected row) ready to place orders on. Raises Conflict (not
        active), ExchangeNotSupported, CredentialsUnreadable."""
        if account.status != AccountStatus.ACTIVE:
            raise Conflict(f"an account in status {account.status} cannot trade")
        info = self.catalogue.get(account.exchange)
        if venue_for(info) is None:
            raise ExchangeNotSupported(f"{info.name} cannot be reached live: it cannot trade")
        return _Account(account.id, account.user_id, info, self.vault.open_account_credentials(account))

    def _account_of(self, account: Any) -> _Account:
        """The account (a model instance or a selected row) for reads of orders already placed (any status but
        disconnected). Raises Conflict, CredentialsUnreadable."""
        if account.status == AccountStatus.DISCONNECTED:
            raise Conflict("this account is disconnected")
        info = self.catalogue.get(account.exchange)
        return _Account(account.id, account.user_id, info, self.vault.open_account_credentials(account))

    def _account_of_order(self, account_id: int) -> _Account | None:
        with self.db.session() as session:
            account = session.get(ExchangeAccount, account_id)
            if account is None or account.status == AccountStatus.DISCONNECTED:
                return None
            return self._account_of(account)

    def _admit(self, principal: Principal, account_id: int, request: OrderRequest, client_order_id: str,
               fingerprint: str, price: Decimal | None, inputs: _Inputs) -> _Admitted | _Needs | None:
        """Admit an order in one transaction: under the account's order lock, find the client order id (a replay),
        check the account, the venue's rules, the policies and the counts, and insert the order ``pending`` with
        its reconciliation job and audit row. Return it; or _Needs (nothing written: the venue's rules or prices
        are needed first); or None (the same client order id committed meanwhile: admit again to answer it).

        Raises NotFound, Conflict, ExchangeNotSupported, CredentialsUnreadable, what fetching ``inputs`` raised,
        BadRequest / ValidationFailed (the venue's rules), RiskPolicyRefused (audited).
        """
        if not valid_id(account_id):
            raise NotFound("exchange account not found")
        subject = f"account:{account_id}"
        try:
            with self.db.session() as session:
                # the lock first: nothing below is read before it is held (PostgreSQL re-reads after the wait)
                locked = session.execute(_LOCK, {"b_subject": subject}).first()
                now = self.clock()
                account = session.execute(_ACCOUNT, {"b_account": account_id, "b_client": client_order_id,
                                                     "b_since": now - 60}).first()
                if account is None or not principal.acts_for(account.user_id) or not principal.sees_account(account.id):
                    raise NotFound("exchange account not found")
                if account.existing_id is not None:
                    existing = session.execute(_ORDER, {"b_id": account.existing_id}).one()
                    return _Admitted(self._account_of(account), _view(existing), replay=True,
                                     request_hash=existing.request_hash, prices=False)
                ready = self._tradable(account)
                policies = (policy_of_row(locked), key_policy_of(session, principal.key_id))
                if inputs.info is None or inputs.info.id != ready.info.id or inputs.market is None:
                    return _Needs(ready.info, _policies_need_prices(policies))
                if isinstance(inputs.market, DomainError):
                    raise inputs.market
                market = inputs.market
                amount = amounts.fit_amount(Decimal(request.amount), market, request.rounding)
                if price is not None:
                    amounts.check_price(price, market)
                needs = _needs_prices(request, market, policies)
                if needs and inputs.prices is None:
                    return _Needs(ready.info, True)
                if isinstance(inputs.prices, DomainError) and needs:
                    raise inputs.prices
                prices = inputs.prices if needs and isinstance(inputs.prices, dict) else {}
                last = prices.get(request.symbol)
                amounts.check_cost(amount, price if price is not None else last, market)
                ticket = Ticket(symbol=request.symbol, type=request.type, amount=amount, price=price, last_price=last,
                                quote_usd=valuation.usd_price(market.quote, prices) if prices else None)
                in_force = None if policies[0] is None else rules.narrow(policies[0], policies[1])
                rules.check(in_force, ticket)
                assert in_force is not None  # check() refuses without a policy
                rules.check_counts(in_force, int(account.open_orders or 0), int(account.last_minute or 0))
                stamp = utcnow()
                values: dict[str, Any] = {
                    "user_id": ready.user_id, "account_id": ready.id, "key_id": principal.key_id,
                    "client_order_id": client_order_id, "request_hash": fingerprint, "exchange_order_id": None,
                    "symbol": request.symbol, "side": request.side, "type": request.type,
                    "amount": amounts.plain(amount), "price": request.price, "time_in_force": request.time_in_force,
                    "post_only": request.post_only, "status": "pending", "filled": "0", "average_price": None,
                    "fees": [], "error_code": None, "created_epoch": now, "created_at": stamp, "updated_at": stamp}
                order_id = int(session.execute(_INSERT_ORDER, values).scalar_one())
                # the safety net: reconciled even if this process dies during the venue call
                enqueue(session, RECONCILE_KIND, {"order_id": order_id}, delay=RECONCILE_SAFETY_DELAY)
                self.audit.write(session, "order.create", "pending", principal=principal, target=f"order:{order_id}",
                                 details={"account_id": ready.id, "client_order_id": client_order_id,
                                          "symbol": request.symbol, "side": request.side, "type": request.type,
                                          "amount": amounts.plain(amount), "price": request.price})
                return _Admitted(ready, _view(_Columns(id=order_id, **values)), replay=False, request_hash=fingerprint,
                                 prices=needs)
        except RiskPolicyRefused as refusal:
            self.audit.record_now("order.create", "refused", principal=principal, target=subject,
                                  details={"rule": refusal.rule, "client_order_id": client_order_id,
                                           "symbol": request.symbol, "side": request.side, "type": request.type})
            raise
        except IntegrityError:  # the same client order id committed meanwhile: that order is the answer
            with self.db.session() as session:
                existing_id = session.scalar(select(ORDERS.c.id).where(ORDERS.c.account_id == account_id,
                                                                       ORDERS.c.client_order_id == client_order_id))
            if existing_id is None:
                raise
            return _AGAIN

    def _apply(self, view: OrderView, state: OrderState, principal: Principal | None) -> OrderView:
        """Record the venue's ``state`` of the order (conditional on the status read: events once); return it."""
        status = state.status if state.status in ("open", *FINAL) else "open"
        values: dict[str, Any] = {
            "status": status, "exchange_order_id": state.exchange_order_id, "filled": amounts.plain(state.filled),
            "average_price": None if state.average_price is None else amounts.plain(state.average_price),
            "fees": [{"currency": c, "cost": amounts.plain(cost)} for c, cost in state.fees], "updated_at": utcnow()}
        with self.db.session() as session:
            row, changed = _transition(session, view.id, view.status, values)
            current = _view(row)
            if changed:
                for kind in _events_for(view.status, status):
                    events.record(session, kind, user_id=row.user_id, data=_event_data(current))
                if view.status == "pending" and principal is not None:
                    self.audit.write(session, "order.create", "ok" if status != "rejected" else "rejected",
                                     principal=principal, target=f"order:{row.id}",
                                     details={"status": status, "exchange_order_id": state.exchange_order_id})
            return current

    def _reject(self, principal: Principal, view: OrderView, code: str) -> OrderView:
        """Mark a pending order ``rejected`` by the venue (``code``: ours), with its event and audit row."""
        with self.db.session() as session:
            row, changed = _transition(session, view.id, "pending",
                                       {"status": "rejected", "error_code": code, "updated_at": utcnow()})
            current = _view(row)
            if changed:
                events.record(session, EventType.ORDER_REJECTED, user_id=row.user_id, data=_event_data(current))
                self.audit.write(session, "order.create", "rejected", principal=principal, target=f"order:{row.id}",
                                 details={"reason": code})
            return current

    def _withdraw(self, principal: Principal, view: OrderView, code: str) -> None:
        """Delete a pending order the venue was never sent (the same client order id may be sent again), audited."""
        with self.db.session() as session:
            gone = rowcount(session.execute(
                delete(Order).where(Order.id == view.id, Order.status == "pending")
                .execution_options(synchronize_session=False)))
            if gone == 1:
                self.audit.record(session, "order.create", "failed", principal=principal, target=f"order:{view.id}",
                                  details={"reason": code, "client_order_id": view.client_order_id})

    def _not_placed(self, order_id: int) -> None:
        """The venue does not know a pending order after reconciliation's attempts: it was never placed."""
        with self.db.session() as session:
            changed = rowcount(session.execute(
                update(Order).where(Order.id == order_id, Order.status == "pending")
                .values(status="rejected", error_code="not_placed", updated_at=utcnow())
                .execution_options(synchronize_session=False)))
            if changed == 1:
                row = session.get(Order, order_id)
                assert row is not None
                events.record(session, EventType.ORDER_REJECTED, user_id=row.user_id, data=_event_data(_view(row)))
                self.audit.record(session, "order.reconcile", "not_placed", user_id=row.user_id,
                                  target=f"order:{row.id}")

    def _reconcile_soon(self, order_id: int) -> None:
        with self.db.session() as session:
            enqueue(session, RECONCILE_KIND, {"order_id": order_id})

    def _order_of(self, principal: Principal, account_id: int, order_id: int) -> tuple[_Account, OrderView]:
        with self.db.session() as session:
            account = visible_account(session, principal, account_id)
            row = session.get(Order, order_id) if valid_id(order_id) else None
            if row is None or row.account_id != account.id:
                raise NotFound("order not found")
            return self._account_of(account), _view(row)

    def _open_rows(self, principal: Principal, account_id: int, symbol: str | None) -> tuple[_Account, list[OrderView]]:
        with self.db.session() as session:
            account = visible_account(session, principal, account_id)
            query = select(Order).where(Order.account_id == account.id, Order.status.in_(OPEN))
            if symbol is not None:
                query = query.where(Order.symbol == symbol)
            rows = [_view(r) for r in session.scalars(query.order_by(Order.id))]
            return self._account_of(account), rows

    def _reload(self, order_id: int) -> OrderView:
        found = self._reload_or_none(order_id)
        if found is None:
            raise NotFound("order not found")
        return found

    def _reload_or_none(self, order_id: int) -> OrderView | None:
        with self.db.session() as session:
            row = session.get(Order, order_id)
            return None if row is None else _view(row)

    def _page(self, account_id: int, statuses: Sequence[str], symbol: str | None, cursor: str | None,
              limit: int) -> Page[OrderView]:
        query = select(Order).where(Order.account_id == account_id, Order.status.in_(list(statuses)))
        if symbol is not None:
            query = query.where(Order.symbol == symbol)
        with self.db.session() as session:
            page = paginate(session, query, Order.id, cursor, limit, descending=True)
            return Page([_view(r) for r in page.items], page.next_cursor)

    def _offset_page(self, account_id: int, query: OrderQuery, offset: int, limit: int) -> OffsetPage[OrderView]:
        found = select(Order).where(Order.account_id == account_id)
        if query.order_id is not None:
            found = found.where(Order.id == query.order_id)
        if query.statuses is not None:
            found = found.where(Order.status.in_(list(query.statuses)))
        if query.filled is not None:  # amounts are stored plain: nothing filled is exactly "0"
            found = found.where(Order.filled != "0" if query.filled else Order.filled == "0")
        if query.symbol is not None:
            found = found.where(Order.symbol == query.symbol)
        if query.since is not None:
            found = found.where(Order.created_epoch >= query.since)
        if query.until is not None:
            found = found.where(Order.created_epoch <= query.until)
        with self.db.session() as session:  # the total and the rows in one statement: one snapshot
            page = paginate_offset(session, found, Order.id, offset, limit, descending=not query.ascending)
            return OffsetPage([_view(r) for r in page.items], offset, limit, page.total)

    # --- the venue ------------------------------------------------------------------------------

    async def _place(self, principal: Principal, account: _Account, view: OrderView, request: OrderRequest,
                     amount: Decimal, price: Decimal | None) -> OrderView:
        """Send the admitted order once; record the answer, or leave it pending and reconcile it."""
        spec = OrderSpec(symbol=request.symbol, side=request.side, type=request.type, amount=amount, price=price,
                         client_order_id=venue_client_id(view.client_order_id), time_in_force=request.time_in_force,
                         post_only=request.post_only)
        refused: DomainError | None = None
        unsent: DomainError | None = None
        state: OrderState | None = None
        try:
            state = await self.gateway.create_order(account.info, account.credentials, spec)
        except (InsufficientFunds, OrderRejected, InvalidCredentials) as exc:
            refused = exc
        except (ExchangeUnavailable, ValidationFailed, NotSupported, ExchangeNotSupported) as exc:
            unsent = exc  # the gateway sent nothing (or the venue refused it for its rate limit): nothing placed
        except OrderOutcomeUnknown:
            log.warning("order %s: the venue's answer is unknown; reconciling by its client order id", view.id)
        except BaseException:  # a bug or a cancellation: the order may exist at the venue; reconcile it
            self._reconcile_soon(view.id)
            raise
        if refused is not None:
            await anyio.to_thread.run_sync(self._reject, principal, view, refused.code)
            raise type(refused)(refused.message)  # a fresh error: nothing of the venue's chained to it
        if unsent is not None:
            await anyio.to_thread.run_sync(self._withdraw, principal, view, unsent.code)
            raise type(unsent)(unsent.message, fields=unsent.fields, retry_after=unsent.retry_after)
        if state is None:
            await anyio.to_thread.run_sync(self._reconcile_soon, view.id)
            return view
        return await anyio.to_thread.run_sync(self._apply, view, state, principal)

    async def _replay(self, account: _Account, view: OrderView, stored: str | None, fingerprint: str) -> Submitted:
        """The answer to a request whose client order id is already on the account (``stored``: that order's
        request hash); nothing is sent again. Raises Conflict for another request."""
        if stored != fingerprint:
            raise Conflict("this client_order_id was used for a different order on this account")
        if view.status == "pending":
            await self._sync(account, [view])
            view = await anyio.to_thread.run_sync(self._reload, view.id)
        return Submitted(view, replayed=True)

    async def _sync(self, account: _Account, views: Sequence[OrderView]) -> None:
        """Bring the stored orders up to date with the venue; a venue that cannot be reached changes nothing."""
        try:
            by_symbol: dict[str, list[OrderView]] = {}
            for view in views:
                by_symbol.setdefault(view.symbol, []).append(view)
            for symbol, group in by_symbol.items():
                placed = [v for v in group if v.status == "open" and v.exchange_order_id]
                venue_open: dict[str, OrderState] = {}
                if placed:
                    listed = await self.gateway.fetch_open_orders(account.info, account.credentials, symbol)
                    venue_open = {s.exchange_order_id: s for s in listed}
                for view in group:
                    state: OrderState | None
                    if view.status == "pending":
                        state = await self.gateway.fetch_order(account.info, account.credentials, symbol,
                                                               client_order_id=venue_client_id(view.client_order_id))
                    elif view.exchange_order_id in venue_open:
                        state = venue_open[view.exchange_order_id]
                    else:
                        state = await self.gateway.fetch_order(account.info, account.credentials, symbol,
                                                               exchange_order_id=view.exchange_order_id)
                    if state is not None and self._differs(view, state):
                        await anyio.to_thread.run_sync(self._apply, view, state, None)
        except (ExchangeUnavailable, OrderOutcomeUnknown, NotFound) as exc:
            log.info("account %s: orders not brought up to date (%s)", account.id, exc.code)

    @staticmethod
    def _differs(view: OrderView, state: OrderState) -> bool:
        return (view.status != state.status or view.filled != state.filled
                or view.exchange_order_id != state.exchange_order_id)

    async def _cancel_one(self, principal: Principal, account: _Account, view: OrderView) -> OrderView:
        assert view.exchange_order_id is not None
        try:
            state = await self.gateway.cancel_order(account.info, account.credentials, view.symbol,
                                                    view.exchange_order_id)
        except NotFound:  # gone from the venue's book (filled or canceled meanwhile): record what it is
            found = await self.gateway.fetch_order(account.info, account.credentials, view.symbol,
                                                   exchange_order_id=view.exchange_order_id)
            if found is None:
                raise NotFound("the venue does not know this order") from None
            state = found
        current = await anyio.to_thread.run_sync(self._apply, view, state, None)
        await anyio.to_thread.run_sync(functools.partial(
            self.audit.record_now, "order.cancel", "ok" if current.status == "canceled" else current.status,
            principal=principal, target=f"order:{view.id}", details={"account_id": account.id}))
        return current

    async def _await_closed(self, account: _Account, view: OrderView, seconds: float) -> OrderView:
        """Look at the venue until the order is final or ``seconds`` have passed; return it as last seen."""
        deadline = self.clock() + max(0.0, min(seconds, 60.0))
        while view.status in OPEN and self.clock() < deadline:
            await asyncio.sleep(AWAIT_STEP)
            await self._sync(account, [view])
            view = await anyio.to_thread.run_sync(self._reload, view.id)
        return view
