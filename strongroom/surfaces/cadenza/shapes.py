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
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from strongroom.errors import ValidationFailed
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.models import ExchangeAccount, ExchangeCredential, User
from strongroom.pagination import OffsetPage
from strongroom.services.sessions import TokenPair

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- vocabulary ------------------------------------------------------------------------------------

# core account status -> Cadenza TradingAccountStatus (the client's enum has no DISABLED)
STATUS_OUT = {"active": "ACTIVE", "disabled": "INACTIVE", "disconnected": "DISCONNECTED", "invalid": "LOCKED",
              "suspended": "LOCKED", "unverified": "CREATED"}
# Cadenza status filter (the client's accountStatus, or the docs page's status) -> core statuses
STATUS_IN: dict[str, tuple[str, ...]] = {
    "ACTIVE": ("active",), "INACTIVE": ("disabled",), "DISABLED": ("disabled",), "DISCONNECTED": ("disconnected",),
    "LOCKED": ("invalid", "suspended"), "CREATED": ("unverified",), "NEW": (), "UNAVAILABLE": (),
}
CREDENTIAL_STATUS_OUT = {"created": "CREATED", "active": "ACTIVE", "expired": "EXPIRED", "revoked": "REVOKED"}
CREDENTIAL_STATUS_IN = {v: k for k, v in CREDENTIAL_STATUS_OUT.items()}
# credentialType values whose credential is an exchange API key and secret (what Strongroom stores)
KEY_TYPES = ("API_KEY", "HMAC")
CREDENTIAL_TYPES = ("API_KEY", "TOKEN", "HMAC", "OAUTH", "RSA", "ED25519")

# the catalogue's account types as Cadenza writes them: externalAccountType, externalTradingAccountId
EXTERNAL_TYPE = {"spot": "SPOT", "margin": "MARGIN", "future": "FUTURES", "swap": "SWAP", "option": "OPTION"}
EXTERNAL_ID = {"future": "futures"}

# where a core or generic field name is not Cadenza's (error messages name Cadenza's)
WIRE_FIELDS = {"api_key": "apiKey", "secret": "apiSecret", "passphrase": "apiPassphrase", "address": "apiKey",
               "private_key": "apiSecret", "exchange": "venue", "account_type": "accountType",
               "credentials": "apiKey"}


def venue(exchange: str) -> str:
    """Cadenza's spelling of a catalogue id: upper case (``binance`` -> ``BINANCE``, ``okx`` -> ``OKX``)."""
    return exchange.upper()


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


class Pagination(BaseModel):
    offset: int
    limit: int
    total: int
    hasNext: bool

    @classmethod
    def of(cls, page: OffsetPage[Any]) -> Pagination:
        return cls(offset=page.offset, limit=page.limit, total=page.total, hasNext=page.has_next)


class Envelope(BaseModel, Generic[T]):
    """Every answer but health: ``{data, success, errno, error}`` (errno 0 on success)."""

    data: T | None = None
    success: bool = True
    errno: int = 0
    error: str | None = None


class ListEnvelope(Envelope[list[T]], Generic[T]):
    pagination: Pagination


class AuthUserOut(BaseModel):
    id: uuid.UUID
    email: str = Field(description="The Strongroom username (what auth/login takes as email).")
    username: str
    role: str = "authenticated"
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, user: User) -> AuthUserOut:
        return cls(id=user.public_id, email=user.username, username=user.username, createdAt=user.created_at,
                   updatedAt=user.updated_at)


class AuthSessionOut(BaseModel):
    accessToken: str
    refreshToken: str
    tokenType: str
    expiresIn: int
    expiresAt: int = Field(description="Unix time in seconds.")
    user: AuthUserOut

    @classmethod
    def of(cls, pair: TokenPair, user: User, now: datetime) -> AuthSessionOut:
        return cls(accessToken=pair.access_token, refreshToken=pair.refresh_token, tokenType=pair.token_type,
                   expiresIn=pair.expires_in, expiresAt=int(now.timestamp()) + pair.expires_in,
                   user=AuthUserOut.of(user))


class CredentialOut(BaseModel):
    """Cadenza's TradingAccountCredential. No secret: only a hint of the API key."""

    credentialId: uuid.UUID
    venue: str
    credentialType: str | None
    nickname: str | None = None
    status: str
    apiKeyHint: str
    createdAt: int
    updatedAt: int
    createdAtDateTime: datetime
    updatedAtDateTime: datetime
    revokedAt: int | None = None
    revokedAtDateTime: datetime | None = None

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
    """Cadenza's TradingAccount (the client's required fields) with the seed page's ``name`` and ``userId``."""

    tradingAccountId: uuid.UUID
    userId: uuid.UUID
    venue: str
    name: str
    nickname: str
    accountType: str = Field(
        description="SPOT or MARGIN (the client's AccountType); the exact kind is in externalAccountType.")
    externalTradingAccountId: str
    externalAccountType: str
    credentials: list[CredentialOut]
    status: str
    createdAt: int
    updatedAt: int
    createdAtDateTime: datetime
    updatedAtDateTime: datetime
    disconnectedAt: int | None = None
    disconnectedAtDateTime: datetime | None = None

    @classmethod
    def build(cls, *, public_id: uuid.UUID, user_id: uuid.UUID, exchange: str, name: str, account_type: str,
              status: str, credentials: list[CredentialOut], created: datetime, updated: datetime,
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


class BalanceOut(BaseModel):
    securitySymbol: str
    securityType: str = "CRYPTO"
    tradingAccountId: uuid.UUID
    status: str = "ACTIVE"
    free: str
    locked: str
    borrowed: str = "0"
    total: str
    net: str
    updatedAt: int
    updatedAtDateTime: datetime


class SummaryOut(BaseModel):
    tradingAccountId: uuid.UUID
    currency: str
    equity: str
    margin: str = "0"
    marginLoan: str = "0"
    marginUsage: str = "0"
    marginRequirement: str = "0"
    marginLevel: str = "0"
    credit: str = "0"
    riskExposure: str = "0"
    leverage: int | None = None
    unpricedAssets: int = Field(0, description="Assets without a price: not counted in equity.")


class PortfolioOut(BaseModel):
    tradingAccountId: uuid.UUID
    venue: str
    positions: list[dict[str, object]] = Field(default_factory=list, description="Spot accounts hold no positions.")
    balances: list[BalanceOut]
    summary: SummaryOut
    updatedAt: int
    updatedAtDateTime: datetime


class HealthOut(BaseModel):
    """Health is the one answer without the envelope; its status is lower case."""

    status: str
    timestamp: int
    version: str
    isoDateTime: datetime
    checks: dict[str, dict[str, str]]
