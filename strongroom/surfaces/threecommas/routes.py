"""3Commas' accounts API (seed 001; py3cw's ``accounts`` actions) at /public/api/ver1: the routes.

Every POST answers 201 and every GET 200, always with a JSON body (``remove``: the bare ``true``).
Parameters come from the query string, a form body or a JSON body (the query wins). Accounts are
the caller's live ones: a removed (disconnected) account, like another user's, is ``not_found``.
Trading actions answer ``not_supported``: Strongroom never trades.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse

from strongroom.accounts import AccountQuery, Accounts, ByOffset, authorize_connect
from strongroom.balances import NO_PROFITS, Balances, total_profits
from strongroom.enums import AccountStatus
from strongroom.errors import (
    AlreadyConnected,
    BadRequest,
    Conflict,
    CredentialsRejected,
    CredentialsUnreadable,
    ExchangeNotSupported,
    ExchangeUnavailable,
    InvalidCredentials,
    MalformedBody,
    NotFound,
    NotSupported,
    PayloadTooLarge,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import Catalogue
from strongroom.exchanges.markets import (
    DOCUMENTED_FIELDS,
    LABELS,
    Market,
    Markets,
    field_name,
    markets,
    pair_of,
    symbol_of,
)
from strongroom.http.routes import guarded
from strongroom.models import ExchangeAccount
from strongroom.principal import Principal
from strongroom.scopes import WRITE
from strongroom.surfaces.deps import AccountsDep, BalancesDep, CatalogueDep, CurrentPrincipal, GatewayDep
from strongroom.surfaces.openapi import raises
from strongroom.surfaces.threecommas import models, params, shapes

api = APIRouter(prefix="/ver1", tags=["3commas"])


# --- guards: checked after authentication, before the parameters ---------------------------------------

def may_write(principal: Principal, path_params: Mapping[str, Any]) -> None:
    """Before the parameters of a write are looked at: ACCOUNTS_WRITE is Strongroom's ``write`` scope."""
    principal.require(WRITE)


def may_connect(principal: Principal, path_params: Mapping[str, Any]) -> None:
    """Before the parameters of /accounts/new: the caller may connect accounts (scope, key binding)."""
    authorize_connect(principal)


# --- the parameters, documented ----------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter as 3Commas takes it (query string, form field or JSON member)."""

    name: str
    description: str
    schema: dict[str, Any]
    required: bool = False


TEXT: dict[str, Any] = {"type": "string", "maxLength": params.MAX_TEXT}
ACCOUNT_ID = Param("account_id", "The account's id.", {"type": "integer", "minimum": 1}, required=True)
CREDENTIALS = tuple(Param(f, f"{LABELS[f].rstrip(':')}: a credential field, when the venue's form has it "
                             "(market_list: form_fields).", TEXT) for f in DOCUMENTED_FIELDS)
# what reading parameters can answer: an unparsable or too large body, another content type, invalid values
READS_PARAMS = (MalformedBody, BadRequest, PayloadTooLarge, ValidationFailed)
LIVE_CHECK = (InvalidCredentials, WithdrawalPermission, ExchangeUnavailable, AlreadyConnected)
LIVE_LOAD = (Conflict, CredentialsRejected, WithdrawalPermission, ExchangeNotSupported, ExchangeUnavailable,
             CredentialsUnreadable)


def documented(*params: Param, body: bool = False, example: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a route's ``openapi_extra``: its parameters in the query string (GET) or in the body, as JSON
    or form fields (POST; the query string works too, and wins), with the body's ``example``."""
    if not body:
        return {"parameters": [{"name": p.name, "in": "query", "required": p.required, "description": p.description,
                                "schema": p.schema} for p in params]}
    schema = {"type": "object", "properties": {p.name: {**p.schema, "description": p.description} for p in params},
              "required": [p.name for p in params if p.required]}
    media = {"schema": schema, **({"example": example} if example is not None else {})}
    return {"requestBody": {"required": any(p.required for p in params), "content": {
        "application/json": media, "application/x-www-form-urlencoded": media}}}


AccountPath = Annotated[str, Path(description="The account's id (another user's, a removed one or an id that is "
                                              "not a number: 404).", examples=["3"])]
AccountOrSummary = Annotated[str, Path(description="The account's id, or summary: every live account summed.",
                                       examples=["3"])]


def created(content: Any) -> JSONResponse:
    """POST's answer: 201 with ``content``."""
    return JSONResponse(content, status_code=201)


def market_codes(catalogue: Catalogue) -> Markets:
    return markets(catalogue)


def market_for(catalogue: Catalogue, code: str, field: str) -> Market:
    """Return the venue of a market code; ValidationFailed naming ``field`` if there is none."""
    try:
        return market_codes(catalogue).by_code(code)
    except NotFound:
        raise ValidationFailed("unknown market code", fields={field: "does not have a valid value"}) from None


@contextlib.contextmanager
def form_field_names() -> Iterator[None]:
    """Name the credentials of a ValidationFailed raised inside as 3Commas' form does (uid: customer_id)."""
    try:
        yield
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, fields={field_name(k): v for k, v in exc.fields.items()}) from None


async def live_account(accounts: Accounts, principal: Principal, raw_id: str) -> ExchangeAccount:
    """Return the caller's live account ``raw_id``; NotFound for a bad id, another user's or a removed one."""
    if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 10):
        raise NotFound("exchange account not found")
    account = await accounts.get(principal, int(raw_id))
    if account.status == AccountStatus.DISCONNECTED:
        raise NotFound("exchange account not found")
    return account


async def entities(balances: Balances, catalogue: Catalogue, principal: Principal,
                   accounts: Sequence[ExchangeAccount]) -> list[dict[str, Any]]:
    """Return the AccountEntity of each of ``accounts`` with its balances and profits (two calls of the balances
    capability whatever their number; an account never loaded has no snapshot and zero profits)."""
    ids = [a.id for a in accounts]
    snapshots = await balances.latest_many(principal, ids) if ids else {}
    profits = await balances.profits_many(principal, ids, datetime.now(UTC)) if snapshots else {}
    codes = market_codes(catalogue)
    return [shapes.account_entity(a, codes.of_account(a.exchange), snapshots.get(a.id), profits.get(a.id, NO_PROFITS))
            for a in accounts]


async def entity(balances: Balances, catalogue: Catalogue, principal: Principal,
           account: ExchangeAccount) -> dict[str, Any]:
    """Return the AccountEntity of ``account`` with its balances and profits."""
    [one] = await entities(balances, catalogue, principal, [account])
    return one


async def summary(service: Balances, principal: Principal) -> dict[str, Any]:
    """Return the summary AccountEntity: every live account the caller sees, summed."""
    now = datetime.now(UTC)
    portfolio = await service.portfolio(principal)
    loaded = [t for t in portfolio.accounts if t.snapshot is not None]
    by_account = await service.profits_many(principal, [t.account_id for t in loaded], now) if loaded else {}
    profits = total_profits(list(by_account.values()))
    since = min((t.snapshot.fetched_at for t in loaded if t.snapshot), default=now)
    return shapes.summary_entity(portfolio.total_usd, portfolio.total_btc, profits, since, now)


# --- no authentication (3Commas: Security NONE) ---------------------------------------------------

@api.get("/ping", summary="Check connectivity.", response_model=models.Pong)
@raises(backing_services=False)
async def ping() -> JSONResponse:
    """Connectivity check (no signature)."""
    return JSONResponse({"pong": "pong"})


@api.get("/time", summary="Read the server's time.", response_model=models.ServerTime)
@raises(backing_services=False)
async def server_time() -> JSONResponse:
    """The server's time (no signature)."""
    return JSONResponse({"server_time": int(time.time())})


@functools.cache
def _market_list(codes: Markets) -> list[dict[str, Any]]:
    return [shapes.market_item(m) for m in codes.all()]


@api.get("/accounts/market_list", response_model=list[models.MarketItem],
         summary="List the venues and their connection forms.")
@raises(backing_services=False)
async def market_list(catalogue: CatalogueDep) -> JSONResponse:
    """Every venue of the catalogue under its market code, with its connection form."""
    return JSONResponse(_market_list(market_codes(catalogue)))


# --- signed ----------------------------------------------------------------------------------------

@api.get("/validate", summary="Check that a signed request verifies.", response_model=models.Valid)
async def validate(principal: CurrentPrincipal) -> JSONResponse:
    """A signed request that verifies (anything else: 401)."""
    return JSONResponse({"valid": True})


@api.get("/accounts/market_pairs", summary="List a venue's priced pairs.", response_model=list[str],
         openapi_extra=documented(Param("market_code", "The venue's market code (market_list).", TEXT, True)))
@raises(*READS_PARAMS, ExchangeUnavailable, ExchangeNotSupported)
async def market_pairs(request: Request, principal: CurrentPrincipal, catalogue: CatalogueDep,
                       gateway: GatewayDep) -> JSONResponse:
    """The venue's spot pairs (``QUOTE_BASE``) that have a price. Signed here (3Commas: NONE): it makes a
    live exchange call, which an anonymous caller must not be able to trigger."""
    values = await params.read(request)
    code = values.text("market_code", required=True)
    values.check()
    market = market_for(catalogue, code or "", "market_code")
    tickers = await gateway.fetch_tickers(market.info)
    return JSONResponse(sorted({p for p in map(pair_of, tickers) if p}))


@api.get("/accounts/currency_rates", summary="Read a pair's last price.", response_model=models.CurrencyRate,
         openapi_extra=documented(Param("pair", "QUOTE_BASE, e.g. USDT_BTC.", TEXT, True),
                                  Param("market_code", "The venue's market code (market_list).", TEXT, True)))
@raises(*READS_PARAMS, ExchangeUnavailable, ExchangeNotSupported)
async def currency_rates(request: Request, principal: CurrentPrincipal, catalogue: CatalogueDep,
                         gateway: GatewayDep) -> JSONResponse:
    """The last price of ``pair`` (``QUOTE_BASE``) on ``market_code`` (signed, as market_pairs)."""
    values = await params.read(request)
    pair = values.text("pair", required=True)
    code = values.text("market_code", required=True)
    values.check()
    market = market_for(catalogue, code or "", "market_code")
    symbol = symbol_of(pair or "")
    prices = await gateway.fetch_prices(market.info, [symbol]) if symbol else {}
    if symbol is None or symbol not in prices:
        raise ValidationFailed("unknown pair", fields={"pair": "is invalid"})
    last = shapes.money(prices[symbol])
    return JSONResponse({"last": last, "orderbook_last": last, "orderbook_price_currency": symbol.split("/")[1],
                         "instrumentKind": "spot"})


@api.get("/accounts/types_to_connect", response_model=list[models.TypeToConnect],
         summary="List the account types a venue can be connected as.",
         openapi_extra=documented(Param("type", "The venue's market code (market_list).", TEXT, True),
                                  Param("api_key", "An exchange API key: is it connected already?", TEXT)))
@raises(*READS_PARAMS)
async def types_to_connect(request: Request, principal: CurrentPrincipal, accounts: AccountsDep,
                           catalogue: CatalogueDep) -> JSONResponse:
    """The account types ``type`` can be connected as (one per venue here), and whether this key already is."""
    values = await params.read(request)
    code = values.text("type", required=True)
    api_key = values.text("api_key")
    values.check()
    market = market_for(catalogue, code or "", "type")
    query = AccountQuery(exchange=market.exchange, api_key=api_key, live_only=True)
    connected = bool(api_key) and bool((await accounts.find(principal, query, ByOffset(limit=1))).items)
    return JSONResponse([{"type": market.code, "connected": connected, "available": True, "unified": False}])


@api.get("/accounts", summary="List your accounts.", response_model=list[models.AccountEntity], openapi_extra=documented(
    Param("page", "The page, from 1.", {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}),
    Param("per_page", "Accounts per page (1-100).", {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}),
    Param("api_key", "Only the account connected with this exchange API key.", TEXT)))
@raises(*READS_PARAMS)
async def list_accounts(request: Request, principal: CurrentPrincipal, accounts: AccountsDep,
                        balances: BalancesDep, catalogue: CatalogueDep) -> JSONResponse:
    """The caller's live accounts: ``page`` (from 1), ``per_page`` (1-100, default 100), ``api_key`` filter."""
    values = await params.read(request)
    page = values.integer("page", default=1, minimum=1, maximum=1_000_000)
    per_page = values.integer("per_page", default=100, minimum=1, maximum=100)
    api_key = values.text("api_key")
    values.check()

    size = per_page or 100
    query = AccountQuery(live_only=True, api_key_hint=api_key)
    found = await accounts.find(principal, query, ByOffset(((page or 1) - 1) * size, size))

    return JSONResponse(await entities(balances, catalogue, principal, found.items))


@api.post("/accounts/new", summary="Connect an exchange account.",
          response_model=models.AccountEntity, status_code=201, openapi_extra=documented(
    Param("type", "The venue's market code (market_list).", TEXT, True),
    Param("name", "The account's name.", TEXT, True),
    Param("types_to_create", "Account types to create: only the market code itself.",
          {"type": "array", "items": TEXT}), *CREDENTIALS, body=True,
    example={"type": "binance", "name": "Main", "api_key": "your-binance-api-key", "secret": "your-binance-secret"}))
@raises(*READS_PARAMS, *LIVE_CHECK)
@guarded(may_connect)
async def new_account(request: Request, principal: CurrentPrincipal, accounts: AccountsDep,
                      catalogue: CatalogueDep) -> JSONResponse:
    """Connect an exchange account: checked live with the venue, stored encrypted."""
    values = await params.read(request)
    code = values.text("type", required=True)
    name = values.text("name", required=True)
    types = values.strings("types_to_create")
    values.check()
    market = market_for(catalogue, code or "", "type")
    if types and any(t != market.code for t in types):
        # one account per request: Strongroom has no sub-type accounts sharing one exchange key
        raise ValidationFailed("unsupported account types", fields={"types_to_create": "does not have a valid value"})
    credentials = market.credentials(values.values)
    with form_field_names():
        account = await accounts.connect(principal, market.exchange, credentials, name=name)
    return created(shapes.account_entity(account, market, None, NO_PROFITS))


@api.post("/accounts/update", summary="Rename an account or replace its credentials.",
          response_model=models.AccountEntity, status_code=201, openapi_extra=documented(
    ACCOUNT_ID, Param("name", "A new name.", TEXT),
    Param("include_in_summary", "Only true: every account is in the summary.", {"type": "boolean"}),
    *CREDENTIALS, body=True, example={"account_id": 3, "name": "Binance main"}))
@raises(*READS_PARAMS, *LIVE_CHECK, NotFound, Conflict)
@guarded(may_write)
async def update_account(request: Request, principal: CurrentPrincipal, accounts: AccountsDep,
                         balances: BalancesDep, catalogue: CatalogueDep) -> JSONResponse:
    """Rename an account and/or replace its exchange credentials (checked live first), in one write."""
    values = await params.read(request)
    account_id = values.integer("account_id", required=True)
    name = values.text("name")
    include = values.boolean("include_in_summary")
    values.check()
    if include is False:
        raise ValidationFailed("every account is in the summary",
                               fields={"include_in_summary": "can only be true"})
    account = await live_account(accounts, principal, str(account_id))
    market = market_codes(catalogue).of_account(account.exchange)
    credentials = market.credentials(values.values)
    if credentials:
        with form_field_names():
            account = await accounts.rotate(principal, account.id, credentials, name=name)
    elif name is not None:
        account = await accounts.rename(principal, account.id, name)
    return created(await entity(balances, catalogue, principal, account))


@api.get("/accounts/transfer_history", summary="Refused: Strongroom keeps no transfer history.", response_model=None)
@api.get("/accounts/transfer_data", summary="Refused: Strongroom does not move funds.", response_model=None)
@raises(NotSupported)
async def transfer_reads(principal: CurrentPrincipal) -> JSONResponse:
    """Not supported: Strongroom does not move funds (422 not_supported)."""
    raise NotSupported("transfers are not supported: Strongroom does not move funds")


@api.post("/accounts/transfer", summary="Refused: Strongroom does not transfer funds.", response_model=None)
@raises(NotSupported)
async def transfer(principal: CurrentPrincipal) -> JSONResponse:
    """Not supported: Strongroom does not move funds (422 not_supported)."""
    raise NotSupported("transfers are not supported: Strongroom does not move funds")


@api.get("/accounts/{account_id}", response_model=models.AccountEntity,
         summary="Read an account, or the summary of all.")
async def account_info(account_id: AccountOrSummary, principal: CurrentPrincipal, accounts: AccountsDep,
                       balances: BalancesDep, catalogue: CatalogueDep) -> JSONResponse:
    """One account (or ``summary``: every live account summed)."""
    if account_id == "summary":
        return JSONResponse(await summary(balances, principal))

    account = await live_account(accounts, principal, account_id)
    return JSONResponse(await entity(balances, catalogue, principal, account))


@api.post("/accounts/{account_id}/rename", response_model=models.AccountEntity, status_code=201,
          summary="Rename an account.",
          openapi_extra=documented(Param("name", "The new name.", TEXT, True), body=True, example={"name": "Über"}))
@raises(*READS_PARAMS, Conflict)
@guarded(may_write)
async def rename_account(account_id: AccountPath, request: Request, principal: CurrentPrincipal,
                         accounts: AccountsDep, balances: BalancesDep, catalogue: CatalogueDep) -> JSONResponse:
    """Rename the account."""
    values = await params.read(request)
    name = values.text("name", required=True)
    values.check()

    account = await live_account(accounts, principal, account_id)
    account = await accounts.rename(principal, account.id, name or "")
    return created(await entity(balances, catalogue, principal, account))


@api.post("/accounts/{account_id}/remove", summary="Disconnect an account.", response_model=bool, status_code=201)
@raises(Conflict)
@guarded(may_write)
async def remove_account(account_id: AccountPath, principal: CurrentPrincipal, accounts: AccountsDep) -> JSONResponse:
    """Disconnect: the credentials are destroyed (Strongroom's ``delete`` scope, as on every surface)."""

    await accounts.disconnect(principal, (await live_account(accounts, principal, account_id)).id)
    return created(True)


@api.post("/accounts/{account_id}/load_balances", response_model=models.AccountEntity, status_code=201,
          summary="Load an account's balances from the venue now.")
@raises(*LIVE_LOAD)
async def load_balances(account_id: AccountPath, principal: CurrentPrincipal, accounts: AccountsDep,
                        balances: BalancesDep, catalogue: CatalogueDep) -> JSONResponse:
    """Load the balances live from the venue, store the snapshot, answer the updated entity."""
    account = await live_account(accounts, principal, account_id)
    await balances.refresh(principal, account.id)
    return created(await entity(balances, catalogue, principal, account))


@api.post("/accounts/{account_id}/pie_chart_data", response_model=list[models.PieSlice], status_code=201,
          summary="Show each asset's share of the value.")
async def pie_chart_data(account_id: AccountOrSummary, principal: CurrentPrincipal, accounts: AccountsDep,
                         service: BalancesDep) -> JSONResponse:
    """The last loaded balances (or ``summary``'s, summed) with each asset's share of the USD value."""

    account = None if account_id == "summary" else await live_account(accounts, principal, account_id)

    if account is None:
        return created(shapes.pie_chart((await service.portfolio(principal)).assets, None))
    snapshot = await service.latest(principal, account.id)
    return created(shapes.pie_chart(snapshot.assets, account.id) if snapshot else [])


@api.post("/accounts/{account_id}/account_table_data", response_model=list[models.TableRow], status_code=201,
          summary="List the last balances, one row per asset.")
async def account_table_data(account_id: AccountPath, principal: CurrentPrincipal, accounts: AccountsDep,
                             service: BalancesDep) -> JSONResponse:
    """The last loaded balances, one row per asset."""

    account = await live_account(accounts, principal, account_id)

    snapshot = await service.latest(principal, account.id)
    return created(shapes.table(snapshot.assets, account.id) if snapshot else [])


@api.get("/accounts/{account_id}/balance_chart_data", summary="Read the stored totals over time.",
         response_model=list[models.ChartPoint], openapi_extra=documented(
    Param("date_from", "From (ISO 8601, or seconds since the epoch), inclusive.", TEXT, True),
    Param("date_to", "To (ISO 8601, or seconds since the epoch), inclusive.", TEXT)))
@raises(*READS_PARAMS)
async def balance_chart_data(account_id: AccountPath, request: Request, principal: CurrentPrincipal,
                             accounts: AccountsDep, service: BalancesDep) -> JSONResponse:
    """The stored totals from ``date_from`` (required) to ``date_to`` (ISO 8601 or epoch seconds)."""
    values = await params.read(request)
    since = values.moment("date_from", required=True)
    until = values.moment("date_to")
    values.check()

    account = await live_account(accounts, principal, account_id)
    return JSONResponse(shapes.balance_chart(await service.history(principal, account.id, since, until)))


@api.get("/accounts/{account_id}/active_trading_entities", response_model=models.ActiveEntities,
         summary="Count running bots and orders (always zero).")
async def active_trading_entities(account_id: AccountPath, principal: CurrentPrincipal,
                                  accounts: AccountsDep) -> JSONResponse:
    """All zeros: Strongroom runs no bots, deals, SmartTrades or orders."""
    await live_account(accounts, principal, account_id)
    return JSONResponse(shapes.NO_ACTIVE_ENTITIES)


def _unsupported(action: str, method: str, summary: str) -> None:
    async def endpoint(account_id: AccountPath, principal: CurrentPrincipal, accounts: AccountsDep) -> JSONResponse:
        await live_account(accounts, principal, account_id)
        raise NotSupported(f"the {action} action is not supported: Strongroom does not trade or move funds")

    endpoint.__name__ = f"unsupported_{action}"
    endpoint.__doc__ = "Not supported: Strongroom does not trade or move funds (422 not_supported; 404 first for " \
                       "an account the caller does not have)."
    api.add_api_route(f"/accounts/{{account_id}}/{action}", raises(NotSupported)(endpoint), methods=[method],
                      name=endpoint.__name__, summary=summary, response_model=None)


for _action, _method, _summary in (
        ("sell_all_to_usd", "POST", "Refused: Strongroom does not sell assets for USD."),
        ("sell_all_to_btc", "POST", "Refused: Strongroom does not sell assets for BTC."),
        ("convert_dust_to_bnb", "POST", "Refused: Strongroom does not convert dust to BNB."),
        ("networks_info", "GET", "Refused: Strongroom lists no deposit networks."),
        ("deposit_data", "GET", "Refused: Strongroom gives no deposit addresses."),
        ("leverage_data", "GET", "Refused: Strongroom sets no leverage.")):
    _unsupported(_action, _method, _summary)
