"""Cadenza v3 routes: auth, trading accounts, credentials, portfolio and health, on the core.

Every answer is HTTP 200 with the envelope (the generated client returns None for any other 2xx);
every id is a UUID. Routes only translate shapes and vocabulary; the rules are the core's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import ConfigDict, Field
from starlette.responses import JSONResponse, Response

from strongroom.accounts import AccountQuery, Accounts, ByOffset, Credentials, Reach, venue_credentials
from strongroom.balances import Snapshot
from strongroom.db import utcnow
from strongroom.enums import AuthMethod
from strongroom.errors import (
    AlreadyConnected,
    BadRequest,
    Conflict,
    CredentialsRejected,
    CredentialsUnreadable,
    ExchangeNotSupported,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidCredentials,
    NotFound,
    OrderRejected,
    RateLimited,
    RiskPolicyRefused,
    SignInRefused,
    Unauthenticated,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.models import ExchangeAccount
from strongroom.surfaces.cadenza.shapes import (
    CREDENTIAL_STATUS_IN,
    CREDENTIAL_TYPES,
    KEY_TYPES,
    ORDER_SIDES,
    ORDER_STATUS_IN,
    ORDER_TYPES,
    ROUNDING_IN,
    TIME_IN_FORCE,
    AccountStatusOut,
    AuthSessionOut,
    AuthUserOut,
    BalanceOut,
    CredentialOut,
    Envelope,
    HealthCheck,
    HealthOut,
    ListEnvelope,
    Pagination,
    PortfolioOut,
    SummaryOut,
    TradeListEnvelope,
    TradeOrderOut,
    TradePagination,
    TradingAccountOut,
    Wire,
    account_id,
    account_type_in,
    cadenza_venue,
    decimal_text,
    instrument_in,
    ms,
    order_id_of,
    statuses_in,
    trade_order_out,
)
from strongroom.surfaces.deps import (
    AccountsDep,
    AuthDep,
    BalancesDep,
    CatalogueDep,
    ClientIP,
    CredentialsDep,
    CurrentPrincipal,
    PingDep,
    SessionsDep,
    TradingDep,
    UsersDep,
)
from strongroom.surfaces.openapi import body_example, raises
from strongroom.surfaces.wire import one_of
from strongroom.trading import OrderQuery, OrderRequest
from strongroom.users import Users

api = APIRouter(tags=["cadenza"])

DEFAULT_LIMIT = 50  # the client's spec default; the docs page's clients send their own
ACCOUNT_ID = Field(description="The trading account's id.")
CREDENTIAL_ID = Field(description="The credential's id.")
VENUE = ("The venue: Cadenza's spelling (BINANCE, OKX), or any catalogue id or alias (any case); "
         "GET /v1/exchanges/{exchange} lists the fields each needs.")
# what checking a key live with the exchange can answer
LIVE_CHECK = (InvalidCredentials, WithdrawalPermission, ExchangeUnavailable, ExchangeNotSupported)


def key_field(what: str) -> Any:
    return Field(None, min_length=1, max_length=4096, description=what)


def name_field(what: str = "A name.") -> Any:
    return Field(None, max_length=100, description=what, examples=["Binance main"])


API_KEY = "The exchange API key."
API_SECRET = "The exchange API secret (or the venue's private key)."
API_PASSPHRASE = "The API key's passphrase (OKX, KuCoin, ...)."

# --- request bodies ---------------------------------------------------------------------------------


class LoginIn(Wire):
    email: str = Field(min_length=1, max_length=254, description="The Strongroom username.", examples=["alice"])
    password: str = Field(min_length=1, max_length=1024, description="The user's password.")


class RefreshIn(Wire):
    refreshToken: str = Field(min_length=1, max_length=200, description="The refresh token of the last session.",
                              examples=["srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"])


class ConnectIn(Wire):
    """Both shapes of connect: the docs page's inline keys, or the client's stored credential."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"venue": "BINANCE", "apiKey": "your-binance-api-key", "apiSecret": "your-binance-secret", "name": "main"},
        {"venue": "OKX", "apiKey": "your-okx-api-key", "apiSecret": "your-okx-secret",
         "apiPassphrase": "your-okx-passphrase", "accountType": "SPOT"},
        {"credentialIds": ["6f1c1f5e-0a8e-4c55-9f5b-1d2e3f4a5b6c"], "externalTradingAccountId": "spot",
         "nickname": "main"}]})

    venue: str | None = Field(None, min_length=1, max_length=64, description=VENUE, examples=["BINANCE"])
    # the seed page: keys inline
    apiKey: str | None = key_field("Inline keys: " + API_KEY)
    apiSecret: str | None = key_field("Inline keys: " + API_SECRET)
    apiPassphrase: str | None = key_field("Inline keys: " + API_PASSPHRASE)
    name: str | None = name_field("The account's name (the docs page's field; nickname wins).")
    accountType: str | None = Field(None, min_length=1, max_length=16, description="SPOT, MARGIN, FUTURES, SWAP or "
                                    "OPTION (any case), one the venue offers; default: its first.", examples=["SPOT"])
    # the client: a stored credential
    credentialIds: list[uuid.UUID] | None = Field(None, max_length=10, description="A stored credential: exactly one "
                                                  "id (not with inline keys).")
    externalTradingAccountId: str | None = Field(None, min_length=1, max_length=64, description="With a stored "
                                                 "credential: the account type (spot, margin, futures, swap, option).",
                                                 examples=["spot"])
    dealerAccountId: uuid.UUID | None = Field(None, description="Not supported (400 if given).")
    nickname: str | None = name_field("The account's name.")


class AccountIn(Wire):
    tradingAccountId: uuid.UUID = ACCOUNT_ID


class UpdateIn(AccountIn):
    nickname: str | None = name_field("The new name.")
    name: str | None = name_field("The new name (the docs page's field; nickname wins).")


class CredentialCreateIn(Wire):
    venue: str = Field(min_length=1, max_length=64, description=VENUE, examples=["BINANCE"])
    credentialType: Annotated[str, one_of(CREDENTIAL_TYPES)] | None = Field(
        None, description="API_KEY or HMAC (an exchange key and secret); the others are refused.", examples=["API_KEY"])
    nickname: str | None = name_field("The credential's name.")
    apiKey: str | None = key_field(API_KEY)
    apiSecret: str | None = key_field(API_SECRET)
    apiPassphrase: str | None = key_field(API_PASSPHRASE)


class VerifyIn(Wire):
    credentialIds: list[uuid.UUID] = Field(min_length=1, max_length=20, description="The credentials to check.")


class CredentialIn(Wire):
    credentialId: uuid.UUID = CREDENTIAL_ID


class RotateIn(CredentialIn):
    apiKey: str | None = key_field("The new " + API_KEY[4:])
    apiSecret: str | None = key_field("The new " + API_SECRET[4:])
    apiPassphrase: str | None = key_field("The new " + API_PASSPHRASE[4:])


# --- helpers --------------------------------------------------------------------------------------

def ok(data: Any) -> Envelope[Any]:
    return Envelope(data=data)


async def accounts_out(users: Users, credentials: Credentials,
                       accounts: Sequence[ExchangeAccount]) -> list[TradingAccountOut]:
    """The accounts in Cadenza's shape, each with its owner's UUID and its credential."""
    owners = await users.public_ids(a.user_id for a in accounts)
    linked = await credentials.linked([a.id for a in accounts])
    return [TradingAccountOut.of(a, owners[a.user_id], linked.get(a.id)) for a in accounts]


async def account_out(users: Users, credentials: Credentials, account: ExchangeAccount) -> TradingAccountOut:
    return (await accounts_out(users, credentials, [account]))[0]


async def reach_out(users: Users, credentials: Credentials, reach: Sequence[Reach]) -> list[TradingAccountOut]:
    """Verify's answer: the caller's accounts as they are, the others NEW or UNAVAILABLE (nothing of another
    user's shown)."""
    owners = await users.public_ids(r.credential.user_id for r in reach)
    mine = [r.account for r in reach if r.account is not None]
    own = dict(zip([a.id for a in mine], await accounts_out(users, credentials, mine), strict=True))
    out: list[TradingAccountOut] = []
    for r in reach:
        if r.account is not None:
            out.append(own[r.account.id])
            continue
        name = f"{r.credential.exchange.upper()} {r.account_type}"
        status: AccountStatusOut = "NEW" if r.availability == "new" else "UNAVAILABLE"
        out.append(TradingAccountOut.build(
            public_id=account_id(r.credential, r.account_type, r.availability), user_id=owners[r.credential.user_id],
            exchange=r.credential.exchange, name=name, account_type=r.account_type, status=status,
            credentials=[CredentialOut.of(r.credential)], created=r.credential.created_at,
            updated=r.credential.updated_at))
    return out


def key_type(value: str | None) -> str | None:
    """Validate Cadenza's credentialType: an exchange key and secret (API_KEY, HMAC) or none given."""
    if value is None:
        return None
    if value not in CREDENTIAL_TYPES:
        raise ValidationFailed("invalid credentialType", fields={"credentialType": ", ".join(CREDENTIAL_TYPES)})
    if value not in KEY_TYPES:
        raise ValidationFailed("unsupported credentialType",
                               fields={"credentialType": f"{value} is not supported: use API_KEY"})
    return value


async def inline_credentials(accounts: Accounts, venue_name: str, key: str | None, secret: str | None,
                             passphrase: str | None) -> dict[str, str]:
    info = await accounts.resolve_exchange(venue_name)
    return venue_credentials(info, key, secret, passphrase)


# --- auth -------------------------------------------------------------------------------------------

@api.post("/auth/login", summary="Sign in with a username and password.", response_model=Envelope[AuthSessionOut],
          openapi_extra=body_example({
              "email": "alice", "password": "correct horse battery staple"}))
@raises(SignInRefused, RateLimited)
async def login(body: LoginIn, ip: ClientIP, users: UsersDep, sessions: SessionsDep) -> Envelope[AuthSessionOut]:
    """Sign in with the Strongroom username (as ``email``) and password: a Strongroom session (the same
    tokens work on /v1)."""
    principal = await users.sign_in(body.email, body.password, ip, scheme=AuthMethod.PASSWORD_GRANT)
    pair = await sessions.issue(principal)
    user = await users.get(principal, principal.user_id)
    return ok(AuthSessionOut.of(pair, user, utcnow()))


@api.post("/auth/token/refresh", response_model=Envelope[AuthSessionOut],
          summary="Exchange a refresh token for new tokens.",
          openapi_extra=body_example({"refreshToken": "srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"}))
@raises(Unauthenticated, RateLimited)
async def refresh(body: RefreshIn, ip: ClientIP, auth: AuthDep, users: UsersDep,
                  sessions: SessionsDep) -> Envelope[AuthSessionOut]:
    """Rotate a refresh token (a reused one ends its whole session family), within the client's failure
    budget (429 when it failed too often)."""
    pair = await auth.refresh(body.refreshToken, ip)
    snap = await sessions.resolve(pair.access_token)
    if snap is None:  # the user was deleted in between
        raise Unauthenticated("invalid refresh token")
    principal = snap.principal(client_ip=ip, scheme=AuthMethod.ACCESS_TOKEN)
    user = await users.get(principal, snap.id)
    return ok(AuthSessionOut.of(pair, user, utcnow()))


@api.post("/auth/logout", summary="End the current session.", response_model=Envelope[str])
async def logout(principal: CurrentPrincipal, request: Request, sessions: SessionsDep) -> Envelope[str]:
    """End the session of the access token used (``data`` is null: the client's model is a string or null)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    await sessions.logout(principal, value.strip() if scheme.lower() == "bearer" else None)
    return ok(None)


@api.get("/auth/user", summary="Show the signed-in user.", response_model=Envelope[AuthUserOut])
async def get_user(principal: CurrentPrincipal, users: UsersDep) -> Envelope[AuthUserOut]:
    """The signed-in user."""
    return ok(AuthUserOut.of(await users.get(principal, principal.user_id)))


# --- trading accounts -------------------------------------------------------------------------------

@api.post("/tradingAccount/connect", summary="Connect a trading account.", response_model=Envelope[TradingAccountOut])
@raises(NotFound, *LIVE_CHECK, AlreadyConnected, Conflict)
async def connect(body: ConnectIn, principal: CurrentPrincipal, accounts: AccountsDep, credentials: CredentialsDep,
                  users: UsersDep, catalogue: CatalogueDep) -> Envelope[TradingAccountOut]:
    """Connect an exchange account: inline keys (``venue, apiKey, apiSecret, apiPassphrase?, name?,
    accountType?``; stored as a credential too) or a stored credential (``credentialIds`` with one id,
    ``externalTradingAccountId``, ``venue?``, ``nickname?``). Keys are checked live first."""
    name = body.nickname if body.nickname is not None else body.name
    if body.dealerAccountId is not None:
        raise ValidationFailed("dealer accounts are not supported", fields={"dealerAccountId": "not supported"})
    if body.credentialIds is not None:
        if body.apiKey is not None or body.apiSecret is not None or body.apiPassphrase is not None:
            raise ValidationFailed("give either credentialIds or inline keys",
                                   fields={"credentialIds": "not with apiKey/apiSecret/apiPassphrase"})
        if len(body.credentialIds) != 1:
            raise ValidationFailed("one credential per trading account", fields={"credentialIds": "exactly one id"})
        credential = await credentials.get(principal, body.credentialIds[0])
        info = catalogue.get(credential.exchange)
        kind = body.externalTradingAccountId or body.accountType
        account_type = account_type_in(info, kind, "externalTradingAccountId") if kind else None
        account, _ = await credentials.connect(principal, credential.public_id, exchange=body.venue, name=name,
                                               account_type=account_type)
    else:
        if body.venue is None or body.apiKey is None:
            missing = {f: "required" for f, v in (("venue", body.venue), ("apiKey", body.apiKey)) if v is None}
            raise ValidationFailed("give venue and apiKey (and apiSecret), or credentialIds", fields=missing)
        info = await accounts.resolve_exchange(body.venue)
        kind = body.accountType or body.externalTradingAccountId
        account_type = account_type_in(info, kind, "accountType") if kind else None
        fields = venue_credentials(info, body.apiKey, body.apiSecret, body.apiPassphrase)
        account, _ = await credentials.connect_inline(principal, info.id, fields, name=name,
                                                      account_type=account_type, kind="API_KEY")
    return ok(await account_out(users, credentials, account))


TradingAccountQ = Annotated[uuid.UUID | None, Query(description="Only this trading account.")]
VenueQ = Annotated[str | None, Query(min_length=1, max_length=64, description="Only this venue (any case).",
                                     examples=["BINANCE"])]
LimitQ = Annotated[int, Query(description="Items per page.")]
OffsetQ = Annotated[int, Query(description="Items to skip.")]
STATUS_FILTER = ("Only accounts in this status (any case): ACTIVE, INACTIVE (DISABLED means it too), LOCKED, "
                 "CREATED, DISCONNECTED, NEW, UNAVAILABLE.")


@api.get("/tradingAccount/list", summary="List trading accounts.", response_model=ListEnvelope[TradingAccountOut])
@raises(NotFound)
async def list_accounts(
    principal: CurrentPrincipal,
    accounts: AccountsDep,
    credentials: CredentialsDep,
    users: UsersDep,
    tradingAccountId: TradingAccountQ = None,
    venue: VenueQ = None,
    accountStatus: Annotated[str | None, Query(max_length=32, description=STATUS_FILTER, examples=["ACTIVE"])] = None,
    status: Annotated[str | None, Query(max_length=32, description="The docs page's name of accountStatus (both "
                                                                  "given: an account matches both).")] = None,
    userId: Annotated[uuid.UUID | None, Query(description="Only this user's accounts (one's own; admins: "
                                                          "anyone's).")] = None,
    tenantId: Annotated[str | None, Query(max_length=128, description="Accepted and ignored.")] = None,
    limit: LimitQ = DEFAULT_LIMIT,
    offset: OffsetQ = 0,
) -> ListEnvelope[TradingAccountOut]:
    """List trading accounts (disconnected ones too, for history), oldest first, by offset.

    Filters: ``tradingAccountId``, ``venue``, ``accountStatus`` (or the docs page's ``status``; DISABLED
    means INACTIVE), ``userId`` (one's own; admins: anyone's). ``tenantId`` is accepted and ignored.
    """
    statuses: set[str] | None = None
    for wanted in (accountStatus, status):  # both given: an account must match both
        if wanted:
            statuses = statuses_in([wanted]) if statuses is None else statuses & statuses_in([wanted])
    user_id = (await users.get_by_public_id(principal, userId)).id if userId is not None else None
    query = AccountQuery(user_id=user_id, public_ids=[tradingAccountId] if tradingAccountId else None, exchange=venue,
                         statuses=statuses)
    page = await accounts.find(principal, query, ByOffset(offset, limit))
    data = await accounts_out(users, credentials, page.items)
    return ListEnvelope(data=data, pagination=Pagination.of(page))


@api.post("/tradingAccount/update", summary="Rename a trading account.", response_model=Envelope[TradingAccountOut],
          openapi_extra=body_example({
              "tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34", "nickname": "Binance main"}))
@raises(NotFound, Conflict)
async def update_account(body: UpdateIn, principal: CurrentPrincipal, accounts: AccountsDep, credentials: CredentialsDep,
                   users: UsersDep) -> Envelope[TradingAccountOut]:
    """Rename (``nickname``, or the docs' ``name``); without either, the account is returned unchanged."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    name = body.nickname if body.nickname is not None else body.name
    if name is not None:
        account = await accounts.rename(principal, account.id, name)
    return ok(await account_out(users, credentials, account))


@api.post("/tradingAccount/enable", summary="Enable a trading account.", response_model=Envelope[TradingAccountOut],
          openapi_extra=body_example({
              "tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34"}))
@raises(NotFound, Conflict)
async def enable(body: AccountIn, principal: CurrentPrincipal, accounts: AccountsDep, credentials: CredentialsDep,
           users: UsersDep) -> Envelope[TradingAccountOut]:
    """Enable an INACTIVE account: its status follows its last live check again."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    account = await accounts.set_enabled(principal, account.id, True)
    return ok(await account_out(users, credentials, account))


@api.post("/tradingAccount/disable", summary="Disable a trading account.", response_model=Envelope[TradingAccountOut],
          openapi_extra=body_example({
              "tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34"}))
@raises(NotFound, Conflict)
async def disable(body: AccountIn, principal: CurrentPrincipal, accounts: AccountsDep, credentials: CredentialsDep,
            users: UsersDep) -> Envelope[TradingAccountOut]:
    """Disable (``INACTIVE``): reversible with enable."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    account = await accounts.set_enabled(principal, account.id, False)
    return ok(await account_out(users, credentials, account))


@api.post("/tradingAccount/disconnect", response_model=Envelope[TradingAccountOut],
          summary="Disconnect a trading account and destroy its keys.",
          openapi_extra=body_example({"tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34"}))
@raises(NotFound, Conflict)
async def disconnect(body: AccountIn, principal: CurrentPrincipal, accounts: AccountsDep, credentials: CredentialsDep,
               users: UsersDep) -> Envelope[TradingAccountOut]:
    """Disconnect (terminal, ``DISCONNECTED`` with ``disconnectedAt``): the stored keys are destroyed."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    account = await accounts.disconnect(principal, account.id)
    return ok(await account_out(users, credentials, account))


# --- portfolio --------------------------------------------------------------------------------------

@api.get("/tradingAccount/portfolio/list", response_model=ListEnvelope[PortfolioOut],
         summary="Load and value the balances of your accounts.")
@raises(Conflict, CredentialsRejected, WithdrawalPermission, ExchangeUnavailable, ExchangeNotSupported,
        CredentialsUnreadable)
async def list_portfolios(
    principal: CurrentPrincipal,
    accounts: AccountsDep,
    balances: BalancesDep,
    tradingAccountId: TradingAccountQ = None,
    venue: VenueQ = None,
    currency: Annotated[str, Query(min_length=1, max_length=8, description="USD (default) or BTC, any case.",
                                   examples=["USD"])] = "USD",
    limit: LimitQ = DEFAULT_LIMIT,
    offset: OffsetQ = 0,
) -> ListEnvelope[PortfolioOut]:
    """Balances of the caller's live accounts, loaded from the exchanges now, valued in ``currency`` (USD or
    BTC) from the venues' tickers. An account that cannot be loaded now (exchange down, disabled, key
    refused) shows its last load (``updatedAt`` says when); one never loaded is left out (for a
    ``tradingAccountId`` filter the refusal is answered instead). Paged over the accounts."""
    wanted = currency.strip().upper()
    if wanted not in ("USD", "BTC"):
        raise ValidationFailed("unsupported currency", fields={"currency": "USD or BTC"})
    unit: Literal["USD", "BTC"] = "USD" if wanted == "USD" else "BTC"
    query = AccountQuery(public_ids=[tradingAccountId] if tradingAccountId else None, exchange=venue, live_only=True)
    page = await accounts.find(principal, query, ByOffset(offset, limit))
    found = {a.id: a for a in page.items}
    if tradingAccountId is not None and found:
        (account,) = found.values()
        snapshots: dict[int, Snapshot | None] = {
            account.id: await balances.refresh_or_latest(principal, account.id)}
    elif found:
        portfolio = await balances.refresh_portfolio(principal)
        snapshots = {t.account_id: t.snapshot for t in portfolio.accounts if t.account_id in found}
    else:
        snapshots = {}
    data = [portfolio_out(found[i], snap, unit) for i, snap in sorted(snapshots.items()) if snap is not None]
    return ListEnvelope(data=data, pagination=Pagination(offset=page.offset, limit=page.limit, total=page.total,
                                                          hasNext=page.has_next))


def portfolio_out(account: ExchangeAccount, snapshot: Snapshot, unit: Literal["USD", "BTC"]) -> PortfolioOut:
    """One account's balance snapshot as Cadenza's Portfolio (``positions`` empty: balances only)."""
    at = snapshot.fetched_at
    balances = [BalanceOut(securitySymbol=a.asset, tradingAccountId=account.public_id, free=decimal_text(a.free),
                           locked=decimal_text(a.used), total=decimal_text(a.total), net=decimal_text(a.total),
                           updatedAt=ms(at), updatedAtDateTime=at) for a in snapshot.assets]
    equity: Decimal = snapshot.total_usd if unit == "USD" else snapshot.total_btc
    summary = SummaryOut(tradingAccountId=account.public_id, currency=unit, equity=decimal_text(equity),
                         unpricedAssets=snapshot.unpriced_assets)
    return PortfolioOut(tradingAccountId=account.public_id, venue=account.exchange.upper(), balances=balances,
                        summary=summary, updatedAt=ms(at), updatedAtDateTime=at)


# --- credentials ------------------------------------------------------------------------------------

@api.post("/credential/create", summary="Store an exchange key.", response_model=Envelope[CredentialOut],
          openapi_extra=body_example({
              "venue": "BINANCE", "credentialType": "API_KEY", "nickname": "Binance main",
              "apiKey": "your-binance-api-key", "apiSecret": "your-binance-secret"}))
@raises(*LIVE_CHECK, AlreadyConnected)
async def create_credential(body: CredentialCreateIn, principal: CurrentPrincipal,
                            accounts: AccountsDep, credentials: CredentialsDep) -> Envelope[CredentialOut]:
    """Store an exchange key (checked live first; the secret is never returned)."""
    kind = key_type(body.credentialType)
    fields = await inline_credentials(accounts, body.venue, body.apiKey, body.apiSecret, body.apiPassphrase)
    credential = await credentials.create(principal, body.venue, fields, nickname=body.nickname, kind=kind)
    return ok(CredentialOut.of(credential))


@api.post("/credential/verify", response_model=Envelope[list[TradingAccountOut]],
          summary="Check exchange keys and list the accounts they reach.",
          openapi_extra=body_example({"credentialIds": ["9b1e7d3c-2a4f-4e8b-b5c6-7d8e9f0a1b2c"]}))
@raises(NotFound, *LIVE_CHECK, Conflict, CredentialsUnreadable)
async def verify_credentials(body: VerifyIn, principal: CurrentPrincipal,
                             credentials: CredentialsDep, users: UsersDep) -> Envelope[list[TradingAccountOut]]:
    """Check the keys live again and list the trading accounts they reach: NEW (not connected), the
    caller's own as they are (ACTIVE...), UNAVAILABLE (connected by another user)."""
    reach = await credentials.verify(principal, body.credentialIds)
    return ok(await reach_out(users, credentials, reach))


@api.post("/credential/rotate", summary="Replace an exchange key's fields.", response_model=Envelope[CredentialOut],
          openapi_extra=body_example({
              "credentialId": "9b1e7d3c-2a4f-4e8b-b5c6-7d8e9f0a1b2c", "apiKey": "your-new-binance-api-key",
              "apiSecret": "your-new-binance-secret"}))
@raises(NotFound, *LIVE_CHECK, AlreadyConnected, Conflict)
async def rotate_credential(body: RotateIn, principal: CurrentPrincipal, accounts: AccountsDep,
                            credentials: CredentialsDep) -> Envelope[CredentialOut]:
    """Replace the key's fields given (checked live first); accounts connected with it get them too."""
    credential = await credentials.get(principal, body.credentialId)
    fields = await inline_credentials(accounts, credential.exchange, body.apiKey, body.apiSecret, body.apiPassphrase)
    rotated = await credentials.rotate(principal, credential.public_id, fields)
    return ok(CredentialOut.of(rotated))


@api.post("/credential/revoke", summary="Revoke an exchange key.", response_model=Envelope[CredentialOut],
          openapi_extra=body_example({
              "credentialId": "9b1e7d3c-2a4f-4e8b-b5c6-7d8e9f0a1b2c"}))
@raises(NotFound, Conflict)
async def revoke_credential(body: CredentialIn, principal: CurrentPrincipal,
                            credentials: CredentialsDep) -> Envelope[CredentialOut]:
    """Revoke (terminal): the key is destroyed, and every account connected with it is disconnected."""
    return ok(CredentialOut.of(await credentials.revoke(principal, body.credentialId)))


@api.get("/credential/list", summary="List your exchange keys.", response_model=ListEnvelope[CredentialOut])
async def list_credentials(
    principal: CurrentPrincipal,
    credentials: CredentialsDep,
    credentialType: Annotated[str | None, Query(max_length=16, description="Only this type (API_KEY, TOKEN, HMAC, "
                                                                           "OAUTH, RSA, ED25519).")] = None,
    credentialStatus: Annotated[str | None, Query(max_length=16, description="Only this status (any case): CREATED, "
                                                                             "ACTIVE, EXPIRED, REVOKED.")] = None,
    credentialIds: Annotated[list[uuid.UUID] | None, Query(max_length=100, description="Only these credentials "
                                                                                       "(repeat the parameter).")] = None,
    limit: LimitQ = 1000,
    offset: OffsetQ = 0,
) -> ListEnvelope[CredentialOut]:
    """The caller's credentials (revoked ones too), oldest first; ``credentialIds`` repeats the key."""
    statuses = None
    if credentialStatus is not None:
        status = CREDENTIAL_STATUS_IN.get(credentialStatus.strip().upper())
        if status is None:
            raise ValidationFailed("invalid credentialStatus",
                                   fields={"credentialStatus": ", ".join(CREDENTIAL_STATUS_IN)})
        statuses = [status]
    kinds = None
    if credentialType is not None:
        if credentialType not in CREDENTIAL_TYPES:
            raise ValidationFailed("invalid credentialType", fields={"credentialType": ", ".join(CREDENTIAL_TYPES)})
        kinds = [credentialType]
    page = await credentials.list(principal, kinds=kinds, statuses=statuses, public_ids=credentialIds,
                                  offset=offset, limit=limit)
    return ListEnvelope(data=[CredentialOut.of(c) for c in page.items], pagination=Pagination.of(page))


# --- utility ----------------------------------------------------------------------------------------

@api.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut, "description": "Unhealthy."}},
         summary="Check that the database answers.")
@raises(backing_services=False)  # a database fault is its own 503 (HealthOut), never the envelope
def health(ping: PingDep) -> Response:
    """Whether the database answers (no authentication; not enveloped, lower-case status, 503 when unhealthy)."""
    try:
        ping()
        state: Literal["healthy", "unhealthy"] = "healthy"
    except Exception:  # noqa: BLE001 - any failure is "unhealthy"; its text is not shown
        state = "unhealthy"
    now = utcnow()
    body = HealthOut(status=state, timestamp=ms(now), version="0.1.0", isoDateTime=now,
                     checks={"database": HealthCheck(status=state)})
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if state == "healthy" else 503)



# --- trade orders (issue 19) ------------------------------------------------------------------------

AWAIT_CLOSED = 1.0  # awaitClosed: seconds to wait for a final state (the client's documented second)
PLACE_ERRORS = (NotFound, RiskPolicyRefused, Conflict, BadRequest, InsufficientFunds, OrderRejected,
                ExchangeUnavailable, ExchangeNotSupported, CredentialsUnreadable)
# fields of SubmitTradeOrderRequest Strongroom does not do: given (not null) -> 400 naming them
UNSUPPORTED_ORDER_FIELDS = ("contingencyType", "stopPrice", "positionId", "expireAt", "quoteId", "leverage",
                            "takeProfitPrice", "takeProfitLimitPrice", "stopLossPrice", "stopLossLimitPrice",
                            "takeProfitTimeInForce", "stopLossTimeInForce")
TRADE_EXAMPLE: dict[str, Any] = {
    "tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34", "instrumentId": "BINANCE:BTC/USDT", "orderSide": "BUY",
    "orderType": "LIMIT", "quantity": "0.01", "limitPrice": "49000", "timeInForce": "GTC", "clientOrderId": "bot1-0001"}


def not_supported_field() -> Any:
    return Field(None, description="Not supported: 400 when given.")


class SubmitIn(Wire):
    """Cadenza's SubmitTradeOrderRequest (the fields Strongroom does not do are refused when given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TRADE_EXAMPLE]})

    tradingAccountId: uuid.UUID = ACCOUNT_ID
    instrumentId: str | None = Field(None, max_length=64, description="VENUE:BASE/QUOTE on the account's venue "
                                                                      "(required).", examples=["BINANCE:BTC/USDT"])
    orderSide: str = Field(max_length=16, description="BUY or SELL.", examples=["BUY"])
    orderType: str | None = Field(max_length=32, description="MARKET or LIMIT (market orders only where the "
                                                             "trading policy allows them; other types: 400).",
                                  examples=["LIMIT"])
    quantity: str = Field(max_length=40, description="The amount of the base asset (decimal string), on the "
                                                     "venue's amount step unless quantityRounding is DOWN.",
                          examples=["0.01"])
    quantityType: str | None = Field(None, max_length=32, description="BASE only (the default).")
    quantityRounding: str | None = Field(None, max_length=16, description="\"\" (default: an amount off the venue's "
                                                                          "step is 400), DOWN or FLOOR (rounded "
                                                                          "down to it); others 400.")
    limitPrice: str | None = Field(None, max_length=40, description="The limit price (decimal string); LIMIT only.",
                                   examples=["49000"])
    timeInForce: str | None = Field(None, max_length=16, description="GTC, IOC or FOK (default GTC).",
                                    examples=["GTC"])
    clientOrderId: str | None = Field(None, max_length=64, description="Your id for the order (1-64 of letters, "
                                                                       "digits and . _ : / -), unique per account: "
                                                                       "the same order again returns it, another "
                                                                       "order with it is 409.", examples=["bot1-0001"])
    idempotencyKey: str | None = Field(None, max_length=64, description="The same as clientOrderId (both given: "
                                                                        "they must be equal, else 400).")
    awaitClosed: bool | None = Field(False, description="Wait up to 1 s for a final state (FILLED, CANCELLED, "
                                                        "REJECTED, EXPIRED) before answering.")
    contingencyType: str | None = not_supported_field()
    stopPrice: str | None = not_supported_field()
    positionId: str | None = not_supported_field()
    expireAt: int | None = not_supported_field()
    quoteId: str | None = not_supported_field()
    leverage: int | None = not_supported_field()
    takeProfitPrice: str | None = not_supported_field()
    takeProfitLimitPrice: str | None = not_supported_field()
    stopLossPrice: str | None = not_supported_field()
    stopLossLimitPrice: str | None = not_supported_field()
    takeProfitTimeInForce: str | None = not_supported_field()
    stopLossTimeInForce: str | None = not_supported_field()


class CancelOrderIn(Wire):
    tradingAccountId: uuid.UUID = ACCOUNT_ID
    tradeOrderId: uuid.UUID = Field(description="The trade order's id.")


def order_request(body: SubmitIn, account_venue: str) -> OrderRequest:
    """Cadenza's request in our terms; raise ValidationFailed naming the first field Strongroom cannot take."""
    given = [name for name in UNSUPPORTED_ORDER_FIELDS if getattr(body, name) is not None]
    if given:
        raise ValidationFailed("unsupported fields", fields={name: "not supported" for name in given})
    if body.clientOrderId is not None and body.idempotencyKey is not None and body.clientOrderId != body.idempotencyKey:
        raise ValidationFailed("clientOrderId and idempotencyKey differ", fields={"idempotencyKey": "differs from "
                                                                                                   "clientOrderId"})
    symbol = instrument_in(body.instrumentId, account_venue)
    side = ORDER_SIDES.get(body.orderSide)
    if side is None:
        raise ValidationFailed("invalid orderSide", fields={"orderSide": "BUY or SELL"})
    if body.orderType not in ("MARKET", "LIMIT"):
        what = "not supported" if body.orderType in ORDER_TYPES else "invalid"
        raise ValidationFailed(f"orderType {what}", fields={"orderType": f"{what}: MARKET or LIMIT"})
    if body.timeInForce is not None and body.timeInForce not in TIME_IN_FORCE:
        raise ValidationFailed("timeInForce not supported", fields={"timeInForce": "GTC, IOC or FOK"})
    if body.quantityType not in (None, "BASE"):
        raise ValidationFailed("quantityType not supported", fields={"quantityType": "BASE only"})
    rounding = ROUNDING_IN.get(body.quantityRounding or "")
    if rounding is None:
        raise ValidationFailed("quantityRounding not supported", fields={"quantityRounding": "\"\", DOWN or FLOOR"})
    return OrderRequest(symbol=symbol, side=side, type=body.orderType.lower(), amount=body.quantity,
                        price=body.limitPrice, time_in_force=body.timeInForce, client_order_id=body.clientOrderId,
                        rounding=rounding)


@api.post("/tradeOrder/submit", response_model=Envelope[list[TradeOrderOut]],
          summary="Place an order through a trading account.", openapi_extra=body_example(TRADE_EXAMPLE))
@raises(*PLACE_ERRORS)
async def submit_trade_order(body: SubmitIn, principal: CurrentPrincipal, accounts: AccountsDep,
                             trading: TradingDep) -> Envelope[list[TradeOrderOut]]:
    """Place a MARKET or LIMIT order (scope ``trade``; the account needs a trading policy). ``data`` is a list
    of one order; the same ``clientOrderId`` (or ``idempotencyKey``) again answers that order without placing
    another (another order with it: 409). A refusal by the risk policy is 403 with the policy field that
    refused in ``details.metadata.rule``; ``SUBMITTED`` means the venue's answer was lost and the order is being
    reconciled (never sent twice)."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    request = order_request(body, cadenza_venue(account.exchange))
    submitted = await trading.submit(principal, account.id, request, idempotency_key=body.idempotencyKey,
                                     await_closed=AWAIT_CLOSED if body.awaitClosed else None)
    return ok([trade_order_out(submitted.order, account)])


@api.post("/tradeOrder/cancel", response_model=Envelope[TradeOrderOut], summary="Cancel an order.",
          openapi_extra=body_example({"tradingAccountId": "3f2c5e4a-8d1b-4c7e-9a60-2b5d7e9f1c34",
                                      "tradeOrderId": "5ec00d5a-7a0e-8000-8000-00000000002a"}))
@raises(NotFound, Conflict, ExchangeUnavailable, CredentialsUnreadable)
async def cancel_trade_order(body: CancelOrderIn, principal: CurrentPrincipal, accounts: AccountsDep,
                             trading: TradingDep) -> Envelope[TradeOrderOut]:
    """Cancel an open order at the venue (scope ``trade``); 409 when it is already final or its placement is not
    confirmed yet."""
    account = await accounts.get_by_public_id(principal, body.tradingAccountId)
    cadenza_venue(account.exchange)
    order_id = order_id_of(body.tradeOrderId)
    if order_id is None:
        raise NotFound("trade order not found")
    return ok(trade_order_out(await trading.cancel(principal, account.id, order_id), account))


@api.get("/tradeOrder/list", response_model=TradeListEnvelope[TradeOrderOut], summary="List an account's orders.")
@raises(NotFound, CredentialsUnreadable)
async def list_trade_orders(
    principal: CurrentPrincipal,
    accounts: AccountsDep,
    trading: TradingDep,
    tradeOrderId: Annotated[uuid.UUID | None, Query(description="Only this order.")] = None,
    orderListId: Annotated[uuid.UUID | None, Query(description="Strongroom has no order lists: nothing "
                                                               "matches.")] = None,
    externalOrderListId: Annotated[str | None, Query(max_length=100, description="Strongroom has no order lists: "
                                                                                 "nothing matches.")] = None,
    orderStatus: Annotated[str | None, Query(max_length=32, description="Only orders in this status (Cadenza's "
                                                                       "OrderStatus).")] = None,
    tradingAccountId: Annotated[uuid.UUID | None, Query(description="The trading account (required).")] = None,
    instrumentId: Annotated[str | None, Query(max_length=64, description="Only this market, VENUE:BASE/QUOTE.")] = None,
    startTime: Annotated[int | None, Query(ge=0, description="Created at or after (ms).")] = None,
    endTime: Annotated[int | None, Query(ge=0, description="Created at or before (ms).")] = None,
    limit: LimitQ = DEFAULT_LIMIT,
    offset: OffsetQ = 0,
    cursor: Annotated[str | None, Query(max_length=20, description="pagination.cursor of the previous page "
                                                                   "(wins over offset).")] = None,
    ascending: Annotated[bool, Query(description="Oldest first (default newest first).")] = False,
) -> TradeListEnvelope[TradeOrderOut]:
    """The account's orders placed through Strongroom (any surface), newest first unless ``ascending``, the open
    ones brought up to date with the venue first; paged by ``offset`` or by ``cursor``."""
    if tradingAccountId is None:
        raise ValidationFailed("tradingAccountId is required", fields={"tradingAccountId": "required"})
    account = await accounts.get_by_public_id(principal, tradingAccountId)
    where = cadenza_venue(account.exchange)
    if cursor is not None:
        if not cursor.isascii() or not cursor.isdigit():
            raise ValidationFailed("invalid cursor", fields={"cursor": "the pagination.cursor of a page"})
        offset = int(cursor)
    statuses, filled = ORDER_STATUS_IN.get(orderStatus, (None, None)) if orderStatus is not None else (None, None)
    if statuses is None and orderStatus is not None:
        raise ValidationFailed("invalid orderStatus", fields={"orderStatus": ", ".join(ORDER_STATUS_IN)})
    order_id = None if tradeOrderId is None else order_id_of(tradeOrderId)
    if orderListId is not None or externalOrderListId is not None or (tradeOrderId is not None and order_id is None):
        statuses = ()  # no order lists; not one of our order ids: nothing matches
    query = OrderQuery(order_id=order_id, statuses=statuses, filled=filled,
                       symbol=None if instrumentId is None else instrument_in(instrumentId, where),
                       since=None if startTime is None else startTime / 1000,
                       until=None if endTime is None else endTime / 1000, ascending=ascending)
    page = await trading.find_orders(principal, account.id, query, offset=offset, limit=limit)
    return TradeListEnvelope(
        data=[trade_order_out(v, account) for v in page.items],
        pagination=TradePagination(offset=page.offset, limit=page.limit, total=page.total, hasNext=page.has_next,
                                   cursor=str(page.offset + len(page.items)) if page.has_next else None))
