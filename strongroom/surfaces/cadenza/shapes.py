"""Cadenza's wire shapes: the envelope, the models its generated client reads, and the vocabulary
(venues, account types, statuses) translated to and from the core's.

What the client needs (see ``shared/reference/cadenza_sdk.md``): every id a UUID, timestamps as
integer milliseconds with ISO ``*DateTime`` twins, enums in exact upper case (``INACTIVE``, never
``DISABLED``), decimals as strings without exponents, and every required field present and non-null.
Fields of the seed's docs page (``name``, ``userId``) are sent next to the client's (``nickname``...):
the client keeps unknown fields, so one body serves both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from strongroom.errors import ValidationFailed
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.models import ExchangeAccount, ExchangeCredential, User
from strongroom.pagination import OffsetPage
from strongroom.surfaces.cadenza.vocabulary import venue
from strongroom.surfaces.wire import DecimalText, one_of
from strongroom.trading import OrderView
from strongroom.users import TokenPair

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- vocabulary ------------------------------------------------------------------------------------

AccountStatusOut = Literal["ACTIVE", "INACTIVE", "DISCONNECTED", "LOCKED", "CREATED", "NEW", "UNAVAILABLE"]
CredentialStatusOut = Literal["CREATED", "ACTIVE", "EXPIRED", "REVOKED"]

# core account status -> Cadenza TradingAccountStatus (the client's enum has no DISABLED)
STATUS_OUT: dict[str, AccountStatusOut] = {"active": "ACTIVE", "disabled": "INACTIVE", "disconnected": "DISCONNECTED", "invalid": "LOCKED",
              "suspended": "LOCKED", "unverified": "CREATED"}
# Cadenza status filter (the client's accountStatus, or the docs page's status) -> core statuses
STATUS_IN: dict[str, tuple[str, ...]] = {
    "ACTIVE": ("active",), "INACTIVE": ("disabled",), "DISABLED": ("disabled",), "DISCONNECTED": ("disconnected",),
    "LOCKED": ("invalid", "suspended"), "CREATED": ("unverified",), "NEW": (), "UNAVAILABLE": (),
}
CREDENTIAL_STATUS_OUT: dict[str, CredentialStatusOut] = {"created": "CREATED", "active": "ACTIVE", "expired": "EXPIRED", "revoked": "REVOKED"}
CREDENTIAL_STATUS_IN: dict[str, str] = {v: k for k, v in CREDENTIAL_STATUS_OUT.items()}
# credentialType values whose credential is an exchange API key and secret (what Strongroom stores)
KEY_TYPES = ("API_KEY", "HMAC")
CREDENTIAL_TYPES = ("API_KEY", "TOKEN", "HMAC", "OAUTH", "RSA", "ED25519")

# the catalogue's account types as Cadenza writes them: externalAccountType, externalTradingAccountId
EXTERNAL_TYPE = {"spot": "SPOT", "margin": "MARGIN", "future": "FUTURES", "swap": "SWAP", "option": "OPTION"}
EXTERNAL_ID = {"future": "futures"}

def account_type_in(info: ExchangeInfo, value: str, field: str) -> str:
    """Return the catalogue account type for Cadenza's ``value`` (SPOT, MARGIN, FUTURES, any case; also the
    external ids spot, margin, futures, swap, option), or raise ValidationFailed naming ``field``.

    FUTURES is the venue's dated futures if it has them, else its perpetual swaps.
    """
    kind = value.strip().lower()
    if kind == "futures":
        kind = "future" if "future" in info.account_types else "swap"
    if kind not in info.account_types:
        offered = ", ".join(EXTERNAL_TYPE.get(t, t.upper()) for t in info.account_types)
        raise ValidationFailed("unsupported account type", fields={field: f"{venue(info.id)} offers {offered}"})
    return kind


def statuses_in(values: Iterable[str]) -> set[str]:
    """Return the core statuses for Cadenza status filters (any case); raise ValidationFailed for an unknown one."""
    found: set[str] = set()
    for value in values:
        statuses = STATUS_IN.get(value.strip().upper())
        if statuses is None:
            raise ValidationFailed("invalid status", fields={"accountStatus": ", ".join(STATUS_IN)})
        found.update(statuses)
    return found


def ms(moment: datetime) -> int:
    """Integer milliseconds since the epoch (exact: no float)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def decimal_text(value: Decimal) -> str:
    """A decimal as the client's pattern ``^-?\\d+(\\.\\d+)?$`` wants it: fixed point, never an exponent."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def account_id(credential: ExchangeCredential, account_type: str, availability: str) -> uuid.UUID:
    """A stable id for an account verify reports but Strongroom does not hold for the caller (new, unavailable)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"strongroom:cadenza:{credential.public_id}:{account_type}:{availability}")


# --- wire models -----------------------------------------------------------------------------------

class Wire(BaseModel):
    """A request body: unknown fields are refused (400 naming them), never silently ignored."""

    model_config = ConfigDict(extra="forbid")


MS = "Milliseconds since the epoch."
ISO = "The same instant in ISO 8601."
VENUE = "The venue in Cadenza's spelling (the catalogue id in upper case)."


class Pagination(BaseModel):
    offset: int = Field(description="Items skipped.", examples=[0])
    limit: int = Field(description="Items per page.", examples=[50])
    total: int = Field(description="Items in all pages.", examples=[1])
    hasNext: bool = Field(description="Whether a next page exists.")

    @classmethod
    def of(cls, page: OffsetPage[Any]) -> Pagination:
        return cls(offset=page.offset, limit=page.limit, total=page.total, hasNext=page.has_next)


class Envelope(BaseModel, Generic[T]):
    """Every answer but health: ``{data, success, errno, error}`` (errno 0 on success)."""

    data: T | None = Field(None, description="The answer (null where there is none).")
    success: bool = Field(True, description="True on success.")
    errno: int = Field(0, description="0 on success.", examples=[0])
    error: str | None = Field(None, description="Null on success.")


class ListEnvelope(Envelope[list[T]], Generic[T]):
    pagination: Pagination = Field(description="Where this page is.")


class AuthUserOut(BaseModel):
    id: uuid.UUID = Field(description="The user's public UUID.")
    email: str = Field(description="The Strongroom username (what auth/login takes as email).", examples=["alice"])
    username: str = Field(description="The Strongroom username.", examples=["alice"])
    role: str = Field("authenticated", description="Always authenticated.", examples=["authenticated"])
    createdAt: datetime = Field(description="When the user was created.")
    updatedAt: datetime = Field(description="When the user last changed.")

    @classmethod
    def of(cls, user: User) -> AuthUserOut:
        return cls(id=user.public_id, email=user.username, username=user.username, createdAt=user.created_at,
                   updatedAt=user.updated_at)


class AuthSessionOut(BaseModel):
    accessToken: str = Field(description="The access token (Authorization: Bearer ...; works on /v1 too).",
                             examples=["sra_ibwZniJL9U4JHJJNRUbdRWfT6H53F63DAQJb"])
    refreshToken: str = Field(description="For auth/token/refresh: used once, then replaced.",
                              examples=["srr_PqxYLbK9uiIzV3rLttg08AWs1XPW8z3e1cKj"])
    tokenType: str = Field(description="Always bearer.", examples=["bearer"])
    expiresIn: int = Field(description="Seconds the access token lasts.", examples=[900])
    expiresAt: int = Field(description="Unix time in seconds.", examples=[1726618219])
    user: AuthUserOut = Field(description="The signed-in user.")

    @classmethod
    def of(cls, pair: TokenPair, user: User, now: datetime) -> AuthSessionOut:
        return cls(accessToken=pair.access_token, refreshToken=pair.refresh_token, tokenType=pair.token_type,
                   expiresIn=pair.expires_in, expiresAt=int(now.timestamp()) + pair.expires_in,
                   user=AuthUserOut.of(user))


class CredentialOut(BaseModel):
    """Cadenza's TradingAccountCredential. No secret: only a hint of the API key."""

    credentialId: uuid.UUID = Field(description="The credential's id.")
    venue: str = Field(description=VENUE, examples=["BINANCE"])
    credentialType: Annotated[str, one_of(("API_KEY", "HMAC"))] | None = Field(
        description="The type given when it was created (null if none was).", examples=["API_KEY"])
    nickname: str | None = Field(None, description="Its name.", examples=["main key"])
    status: CredentialStatusOut = Field(description="CREATED (never checked: the venue has no live check), ACTIVE "
                                                    "(the exchange accepted it), EXPIRED (refused, or it can "
                                                    "withdraw: rotate it), REVOKED (terminal: destroyed).")
    apiKeyHint: str = Field(description="The API key's first and last 4 characters (never the key).",
                            examples=["vmPU…Eh8A"])
    createdAt: int = Field(description="When it was stored. " + MS, examples=[1726617319607])
    updatedAt: int = Field(description="When it last changed. " + MS, examples=[1726617319607])
    createdAtDateTime: datetime = Field(description=ISO)
    updatedAtDateTime: datetime = Field(description=ISO)
    revokedAt: int | None = Field(None, description="When it was revoked, if it was. " + MS)
    revokedAtDateTime: datetime | None = Field(None, description=ISO)

    @classmethod
    def of(cls, credential: ExchangeCredential) -> CredentialOut:
        revoked = credential.revoked_at
        return cls(credentialId=credential.public_id, venue=venue(credential.exchange),
                   credentialType=credential.kind, nickname=credential.nickname,
                   status=CREDENTIAL_STATUS_OUT.get(credential.status, "EXPIRED"), apiKeyHint=credential.key_hint,
                   createdAt=ms(credential.created_at), updatedAt=ms(credential.updated_at),
                   createdAtDateTime=credential.created_at, updatedAtDateTime=credential.updated_at,
                   revokedAt=ms(revoked) if revoked else None, revokedAtDateTime=revoked)


class TradingAccountOut(BaseModel):
    """Cadenza's TradingAccount (the client's required fields) with the docs page's ``name`` and ``userId``."""

    tradingAccountId: uuid.UUID = Field(description="The account's id.")
    userId: uuid.UUID = Field(description="The owner's id.")
    venue: str = Field(description=VENUE, examples=["BINANCE"])
    name: str = Field(description="The account's name (the docs page's field).", examples=["Binance main"])
    nickname: str = Field(description="The account's name (the client's field).", examples=["Binance main"])
    accountType: Literal["SPOT", "MARGIN"] = Field(
        description="SPOT or MARGIN (the client's AccountType); the exact kind is in externalAccountType.")
    externalTradingAccountId: str = Field(description="The account type's id on the venue: spot, margin, futures, "
                                                      "swap or option.", examples=["spot"])
    externalAccountType: Annotated[str, one_of(EXTERNAL_TYPE.values())] = Field(
        description="The exact account type.")
    credentials: list[CredentialOut] = Field(description="The stored credential it is connected with (none for "
                                                         "accounts connected before credentials existed).")
    status: AccountStatusOut = Field(description="ACTIVE; INACTIVE (disabled); LOCKED (the exchange refuses the key, "
                                                 "or it can withdraw); CREATED (the venue cannot be checked live); "
                                                 "DISCONNECTED (terminal); in credential/verify also NEW (not "
                                                 "connected) and UNAVAILABLE (connected by another user).")
    createdAt: int = Field(description="When it was connected. " + MS, examples=[1726617319607])
    updatedAt: int = Field(description="When it last changed. " + MS, examples=[1726617319607])
    createdAtDateTime: datetime = Field(description=ISO)
    updatedAtDateTime: datetime = Field(description=ISO)
    disconnectedAt: int | None = Field(None, description="When it was disconnected, if it was. " + MS)
    disconnectedAtDateTime: datetime | None = Field(None, description=ISO)

    @classmethod
    def build(cls, *, public_id: uuid.UUID, user_id: uuid.UUID, exchange: str, name: str, account_type: str,
              status: AccountStatusOut, credentials: list[CredentialOut], created: datetime, updated: datetime,
              disconnected: datetime | None = None) -> TradingAccountOut:
        return cls(tradingAccountId=public_id, userId=user_id, venue=venue(exchange), name=name, nickname=name,
                   accountType="SPOT" if account_type == "spot" else "MARGIN",
                   externalTradingAccountId=EXTERNAL_ID.get(account_type, account_type),
                   externalAccountType=EXTERNAL_TYPE.get(account_type, account_type.upper()),
                   credentials=credentials, status=status, createdAt=ms(created), updatedAt=ms(updated),
                   createdAtDateTime=created, updatedAtDateTime=updated,
                   disconnectedAt=ms(disconnected) if disconnected else None, disconnectedAtDateTime=disconnected)

    @classmethod
    def of(cls, account: ExchangeAccount, owner: uuid.UUID, credential: ExchangeCredential | None) -> TradingAccountOut:
        return cls.build(public_id=account.public_id, user_id=owner, exchange=account.exchange, name=account.name,
                         account_type=account.account_type, status=STATUS_OUT.get(account.status, "LOCKED"),
                         credentials=[CredentialOut.of(credential)] if credential else [],
                         created=account.created_at, updated=account.updated_at,
                         disconnected=account.disconnected_at)


ZERO = Field("0", description="Always 0 (spot balances only).", examples=["0"])
ACCOUNT = Field(description="The trading account's id.")


class BalanceOut(BaseModel):
    securitySymbol: str = Field(description="The asset.", examples=["BTC"])
    securityType: str = Field("CRYPTO", description="Always CRYPTO.", examples=["CRYPTO"])
    tradingAccountId: uuid.UUID = ACCOUNT
    status: str = Field("ACTIVE", description="Always ACTIVE.", examples=["ACTIVE"])
    free: DecimalText = Field(description="Available amount (decimal string).", examples=["0.5"])
    locked: DecimalText = Field(description="Amount on hold (decimal string).", examples=["0.1"])
    borrowed: DecimalText = ZERO
    total: DecimalText = Field(description="free + locked (decimal string).", examples=["0.6"])
    net: DecimalText = Field(description="total - borrowed (decimal string).", examples=["0.6"])
    updatedAt: int = Field(description="When it was loaded. " + MS, examples=[1726617319607])
    updatedAtDateTime: datetime = Field(description=ISO)


class SummaryOut(BaseModel):
    tradingAccountId: uuid.UUID = ACCOUNT
    currency: Literal["USD", "BTC"] = Field(description="What equity is valued in (the currency parameter).")
    equity: DecimalText = Field(description="The value of every priced asset (decimal string).", examples=["31200"])
    margin: DecimalText = ZERO
    marginLoan: DecimalText = ZERO
    marginUsage: DecimalText = ZERO
    marginRequirement: DecimalText = ZERO
    marginLevel: DecimalText = ZERO
    credit: DecimalText = ZERO
    riskExposure: DecimalText = ZERO
    leverage: int | None = Field(None, description="Always null.")
    unpricedAssets: int = Field(0, description="Assets without a price: not counted in equity.")


class PortfolioOut(BaseModel):
    tradingAccountId: uuid.UUID = ACCOUNT
    venue: str = Field(description=VENUE, examples=["BINANCE"])
    positions: list[dict[str, object]] = Field(default_factory=list, description="Spot accounts hold no positions.")
    balances: list[BalanceOut] = Field(description="Every asset held.")
    summary: SummaryOut = Field(description="The account's value.")
    updatedAt: int = Field(description="When the balances were loaded. " + MS, examples=[1726617319607])
    updatedAtDateTime: datetime = Field(description=ISO)


class HealthCheck(BaseModel):
    status: Literal["healthy", "unhealthy"] = Field(description="Whether the database answers.")


class HealthOut(BaseModel):
    """Health is the one answer without the envelope; its status is lower case."""

    status: Literal["healthy", "unhealthy"] = Field(description="healthy when every check is.")
    timestamp: int = Field(description="The server's time. " + MS, examples=[1726617319607])
    version: str = Field(description="Strongroom's version.", examples=["0.1.0"])
    isoDateTime: datetime = Field(description=ISO)
    checks: dict[str, HealthCheck] = Field(description="Each check (database) and its status.")


# --- trade orders (issue 19) -----------------------------------------------------------------------

# Cadenza's Venue enum (the client refuses any other value in an answer)
CADENZA_VENUES = frozenset(
    [v for base in ("BINANCE", "B2C2", "WINTERMUTE", "BLOCKFILLS", "STONEX", "CUMBERLAND", "IBKR", "DERIBIT",
                    "BITFINEX", "OKX", "HYPERLIQUID") for v in (base, base + "_UAT")]
    + ["BINANCE_SANDBOX", "B2C2_SANDBOX", "IBKR_PAPER", "FERMATA", "MOCK", "PAPER"])
ORDER_TYPES = ("MARKET", "LIMIT", "LIMIT_MAKER", "STOP", "STOP_LIMIT", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
               "TAKE_PROFIT_LIMIT", "TRAILING_STOP", "QUOTED")
ORDER_SIDES = {"BUY": "buy", "SELL": "sell"}
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
# Cadenza's quantityRounding -> ours ("" is the client's default: none)
ROUNDING_IN = {"": "none", "DOWN": "down", "FLOOR": "down"}
OrderStatusOut = Literal["SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED", "EXPIRED"]
ORDER_STATUS_OUT: dict[str, OrderStatusOut] = {"pending": "SUBMITTED", "closed": "FILLED", "canceled": "CANCELLED",
                                               "rejected": "REJECTED", "expired": "EXPIRED"}
# Cadenza's OrderStatus filter -> our statuses, and whether some of it is filled (None: either)
ORDER_STATUS_IN: dict[str, tuple[tuple[str, ...], bool | None]] = {
    "CREATED": (("pending",), None), "SUBMITTED": (("pending",), None), "ACCEPTED": (("open",), False),
    "PARTIALLY_FILLED": (("open",), True), "FILLED": (("closed",), None), "CANCELLED": (("canceled",), None),
    "REJECTED": (("rejected",), None), "EXPIRED": (("expired",), None), "PENDING_CANCEL": ((), None),
    "REPLACED": ((), None), "PENDING_REPLACE": ((), None), "REVOKED": ((), None), "UNKNOWN": ((), None)}
# a trade order's UUID: a fixed RFC 9562 version-8 prefix, then the order's id (reversible, stable, no lookup)
ORDER_UUID_TAG = 0x5EC0_0D5A_7A0E_8000  # version nibble 8 in the right place
ORDER_UUID_VARIANT = 0x8000_0000_0000_0000  # variant bits 10


def order_uuid(order_id: int) -> uuid.UUID:
    """The trade order's UUID for Strongroom's order id (the same every time)."""
    return uuid.UUID(int=(ORDER_UUID_TAG << 64) | ORDER_UUID_VARIANT | order_id)


def order_id_of(value: uuid.UUID) -> int | None:
    """Strongroom's order id in a trade order UUID; None if it is not one of ours (then: not found)."""
    high, low = value.int >> 64, value.int & ((1 << 64) - 1)
    if high != ORDER_UUID_TAG or low & ORDER_UUID_VARIANT == 0:
        return None
    found = low & ~ORDER_UUID_VARIANT
    return found if 0 < found < 2**31 else None


def cadenza_venue(exchange: str) -> str:
    """Cadenza's Venue for a catalogue id; ValidationFailed (tradingAccountId) when its enum has none."""
    name = venue(exchange)
    if name not in CADENZA_VENUES:
        raise ValidationFailed("this venue cannot trade through Cadenza's API",
                               fields={"tradingAccountId": f"{name} is not in Cadenza's Venue enum"})
    return name


def instrument_in(value: str | None, account_venue: str) -> str:
    """Return the ccxt symbol (``BTC/USDT``) of Cadenza's ``VENUE:BASE/QUOTE`` on the account's venue; raise
    ValidationFailed naming instrumentId when it is missing, malformed or on another venue."""
    if value is None:
        raise ValidationFailed("instrumentId is required", fields={"instrumentId": "required: VENUE:BASE/QUOTE"})
    where, colon, symbol = value.strip().partition(":")
    base, slash, quote = symbol.partition("/")
    if not colon or not slash or not base or not quote or "/" in quote:
        raise ValidationFailed("invalid instrumentId", fields={"instrumentId": "VENUE:BASE/QUOTE, such as "
                                                                              "BINANCE:BTC/USDT"})
    if where.upper() != account_venue:
        raise ValidationFailed("instrumentId is on another venue",
                               fields={"instrumentId": f"the trading account is on {account_venue}"})
    return f"{base.upper()}/{quote.upper()}"


def order_status_out(status: str, filled: Decimal) -> OrderStatusOut:
    """Cadenza's OrderStatus for ours: pending is SUBMITTED (the venue's answer is being reconciled)."""
    if status == "open":
        return "PARTIALLY_FILLED" if filled > 0 else "ACCEPTED"
    return ORDER_STATUS_OUT.get(status, "SUBMITTED")


class TradePagination(Pagination):
    cursor: str | None = Field(None, description="Give it as cursor for the next page (null on the last).")


class TradeListEnvelope(Envelope[list[T]], Generic[T]):
    pagination: TradePagination = Field(description="Where this page is.")


class FeeOut(BaseModel):
    """Cadenza's SecurityQuantity."""

    security: str = Field(description="VENUE:ASSET.", examples=["BINANCE:USDT"])
    asset: str = Field(description="The fee's asset.", examples=["USDT"])
    venue: str = Field(description=VENUE, examples=["BINANCE"])
    quantity: DecimalText = Field(description="The fee (decimal string).", examples=["0.49"])


class TradeOrderOut(BaseModel):
    """Cadenza's TradeOrder: every field its client requires, and the ids Strongroom and the venue know it by."""

    tradeOrderId: uuid.UUID = Field(description="The order's id (stable).")
    tradingAccountId: uuid.UUID = ACCOUNT
    venue: str = Field(description=VENUE, examples=["BINANCE"])
    instrumentId: str = Field(description="VENUE:BASE/QUOTE.", examples=["BINANCE:BTC/USDT"])
    baseAsset: str = Field(description="The base asset.", examples=["BTC"])
    quoteAsset: str = Field(description="The quote asset.", examples=["USDT"])
    orderSide: Literal["BUY", "SELL"] = Field(description="BUY or SELL.")
    orderType: Literal["MARKET", "LIMIT"] = Field(description="MARKET or LIMIT.")
    timeInForce: str = Field(description="GTC, IOC or FOK (as asked; default GTC, IOC for market orders).",
                             examples=["GTC"])
    status: OrderStatusOut = Field(description="SUBMITTED (the venue's answer is being reconciled), ACCEPTED (open), "
                                               "PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED or EXPIRED.")
    rejectReason: str | None = Field(None, description="Why it was rejected (Strongroom's code: insufficient_funds, "
                                                       "order_rejected, not_placed, ...).")
    limitPrice: DecimalText | None = Field(None, description="The limit price (decimal string; LIMIT only).",
                                           examples=["49000"])
    quantity: DecimalText = Field(description="The amount of the base asset ordered (decimal string).",
                                  examples=["0.01"])
    orderQuantityType: Literal["BASE"] = Field("BASE", description="Always BASE.")
    executedPrice: DecimalText = Field(description="The average fill price (decimal string; 0 before a fill).",
                                       examples=["0"])
    executedQuantity: DecimalText = Field(description="The amount filled (decimal string).", examples=["0"])
    executedCost: DecimalText = Field(description="executedQuantity x executedPrice (decimal string).",
                                      examples=["0"])
    fees: list[FeeOut] = Field(description="The fees the venue reports.")
    clientOrderId: str = Field(description="The client order id (the idempotency key).", examples=["bot1-0001"])
    externalOrderId: str | None = Field(None, description="The venue's id (null while SUBMITTED).",
                                        examples=["28457"])
    createdAt: int = Field(description="When Strongroom accepted it. " + MS, examples=[1726617319607])
    updatedAt: int = Field(description="When it last changed. " + MS, examples=[1726617319607])
    createdAtDateTime: datetime = Field(description=ISO)
    updatedAtDateTime: datetime = Field(description=ISO)
    canceledAt: int | None = Field(None, description="When it was canceled, if it was. " + MS)
    canceledAtDateTime: datetime | None = Field(None, description=ISO)


def plain(value: Decimal) -> str:
    """A decimal without trailing zeros nor exponent (``40.000`` -> ``40``)."""
    return decimal_text(value.normalize()) if value else "0"


def trade_order_out(view: OrderView, account: ExchangeAccount) -> TradeOrderOut:
    """Our order as Cadenza's TradeOrder (``account`` is the order's; its venue is in Cadenza's enum)."""
    where = cadenza_venue(account.exchange)
    base, _, quote = view.symbol.partition("/")
    executed = view.average_price if view.average_price is not None else Decimal(0)
    canceled = view.updated_at if view.status == "canceled" else None
    return TradeOrderOut(
        tradeOrderId=order_uuid(view.id), tradingAccountId=account.public_id, venue=where,
        instrumentId=f"{where}:{view.symbol}", baseAsset=base, quoteAsset=quote,
        orderSide="BUY" if view.side == "buy" else "SELL", orderType="LIMIT" if view.type == "limit" else "MARKET",
        timeInForce=view.time_in_force or ("GTC" if view.type == "limit" else "IOC"),
        status=order_status_out(view.status, view.filled),
        rejectReason=view.error_code if view.status == "rejected" else None,
        limitPrice=None if view.price is None else plain(view.price), quantity=plain(view.amount),
        executedPrice=plain(executed), executedQuantity=plain(view.filled),
        executedCost=plain(view.filled * executed),
        fees=[FeeOut(security=f"{where}:{asset}", asset=asset, venue=where, quantity=plain(cost))
              for asset, cost in view.fees],
        clientOrderId=view.client_order_id, externalOrderId=view.exchange_order_id,
        createdAt=ms(view.created_at), updatedAt=ms(view.updated_at), createdAtDateTime=view.created_at,
        updatedAtDateTime=view.updated_at, canceledAt=None if canceled is None else ms(canceled),
        canceledAtDateTime=canceled)
