"""What Cadenza's generated client (``cadenza_client`` 3.5.4) accepts, as strict pydantic models, and how
it talks, as a tiny caller: written from ``shared/reference/cadenza_sdk.md``, which was checked by
running that client against a fake server and feeding it wrong bodies.

The models refuse what the client refuses (a 2xx body that fails them would raise in the client):
``StrictInt`` for errno and millisecond times (no ``0.0``, no strings, no booleans), ``StrictBool``,
UUID strings for ids, exact upper-case enum values, decimal strings matching ``^-?\\d+(\\.\\d+)?$``,
and every required field present and non-null. Unknown fields are kept (the client stores them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, StringConstraints

Venue = Literal[
    "BINANCE", "B2C2", "WINTERMUTE", "BLOCKFILLS", "STONEX", "CUMBERLAND", "IBKR", "DERIBIT", "BITFINEX", "OKX",
    "HYPERLIQUID", "BINANCE_UAT", "B2C2_UAT", "WINTERMUTE_UAT", "BLOCKFILLS_UAT", "STONEX_UAT", "CUMBERLAND_UAT",
    "IBKR_UAT", "DERIBIT_UAT", "BITFINEX_UAT", "OKX_UAT", "HYPERLIQUID_UAT", "BINANCE_SANDBOX", "B2C2_SANDBOX",
    "IBKR_PAPER", "FERMATA", "MOCK", "PAPER"]
AccountType = Literal["SPOT", "MARGIN", "CREDIT"]
TradingAccountStatus = Literal["NEW", "CREATED", "ACTIVE", "INACTIVE", "LOCKED", "DISCONNECTED", "UNAVAILABLE"]
CredentialType = Literal["API_KEY", "TOKEN", "HMAC", "OAUTH", "RSA", "ED25519"]
CredentialStatus = Literal["CREATED", "ACTIVE", "EXPIRED", "REVOKED"]
SecurityType = Literal["STOCK", "CRYPTO", "CURRENCY", "COMMODITY", "INDEX", "BOND", "OPTION", "FUTURES",
                       "PERPETUAL", "CFD"]
DecimalString = Annotated[str, StringConstraints(strict=True, pattern=r"^-?\d+(\.\d+)?$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Pagination(Model):
    offset: StrictInt | None = None
    limit: StrictInt | None = None
    total: StrictInt | None = None
    cursor: StrictStr | None = None
    hasNext: StrictBool | None = None


class BaseResponse(Model):
    """The envelope: ``errno`` is required, an integer; ``success`` a bool."""

    success: StrictBool | None = None
    errno: StrictInt
    error: StrictStr | None = None
    details: dict[str, Any] | None = None


class AuthUser(Model):
    id: uuid.UUID | None = None
    email: StrictStr | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    role: StrictStr | None = None


class AuthSession(Model):
    accessToken: StrictStr | None = None
    refreshToken: StrictStr | None = None
    tokenType: StrictStr | None = None
    expiresIn: StrictInt | None = None
    expiresAt: StrictInt | None = None
    user: AuthUser | None = None


class TradingAccountCredential(Model):
    credentialId: uuid.UUID
    venue: Venue
    credentialType: CredentialType | None = None  # required but nullable
    nickname: StrictStr | None = None
    status: CredentialStatus
    createdAt: StrictInt
    updatedAt: StrictInt
    createdAtDateTime: datetime | None = None
    updatedAtDateTime: datetime | None = None
    revokedAt: StrictInt | None = None
    revokedAtDateTime: datetime | None = None


class TradingAccount(Model):
    tradingAccountId: uuid.UUID
    externalTradingAccountId: StrictStr
    venue: Venue
    nickname: StrictStr
    accountType: AccountType
    externalAccountType: StrictStr
    credentials: list[TradingAccountCredential]
    status: TradingAccountStatus
    createdAt: StrictInt
    updatedAt: StrictInt
    createdAtDateTime: datetime | None = None
    updatedAtDateTime: datetime | None = None


class BalanceEntry(Model):
    securitySymbol: StrictStr
    securityType: SecurityType
    tradingAccountId: uuid.UUID
    status: Literal["ACTIVE", "LOCKED"]
    free: DecimalString
    locked: DecimalString
    borrowed: DecimalString
    total: DecimalString
    net: DecimalString
    updatedAt: StrictInt
    updatedAtDateTime: datetime | None = None


class PortfolioSummary(Model):
    tradingAccountId: uuid.UUID
    currency: StrictStr
    equity: DecimalString
    margin: DecimalString
    marginLoan: DecimalString
    marginUsage: DecimalString
    marginRequirement: DecimalString
    marginLevel: DecimalString
    credit: DecimalString
    riskExposure: DecimalString
    leverage: StrictInt | None = None


class Portfolio(Model):
    tradingAccountId: uuid.UUID
    venue: Venue
    positions: list[dict[str, Any]]
    balances: list[BalanceEntry]
    summary: PortfolioSummary
    updatedAt: StrictInt
    updatedAtDateTime: datetime | None = None


class Health(Model):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: StrictInt
    version: StrictStr


class AuthSessionResponse(BaseResponse):
    data: AuthSession | None = None


class AuthUserResponse(BaseResponse):
    data: AuthUser | None = None


class LogoutResponse(BaseResponse):
    data: StrictStr | None = None


class TradingAccountResponse(BaseResponse):
    data: TradingAccount | None = None


class TradingAccountListResponse(BaseResponse):
    data: list[TradingAccount] | None = None
    pagination: Pagination | None = None


class VerifyResponse(BaseResponse):
    data: list[TradingAccount] | None = None


class CredentialResponse(BaseResponse):
    data: TradingAccountCredential | None = None


class CredentialListResponse(BaseResponse):
    data: list[TradingAccountCredential] | None = None
    pagination: Pagination | None = None


class PortfolioListResponse(BaseResponse):
    data: list[Portfolio] | None = None
    pagination: Pagination | None = None


# --- the operations: path, method, whether the bearer is sent, the 200 model, the statuses whose body
# --- the client parses into BaseResponse (any other status still raises, without e.data)

MAP = (400, 401, 403, 404, 500)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    bearer: bool
    model: type[BaseResponse]
    error_map: tuple[int, ...] = MAP


OPERATIONS = {
    "auth_login": Operation("POST", "/api/v3/auth/login", False, AuthSessionResponse, (400, 401, 429, 500)),
    "auth_refresh_token": Operation("POST", "/api/v3/auth/token/refresh", False, AuthSessionResponse, (400, 401, 500)),
    "auth_logout": Operation("POST", "/api/v3/auth/logout", True, LogoutResponse, (401, 500)),
    "auth_get_user": Operation("GET", "/api/v3/auth/user", True, AuthUserResponse, (401, 500)),
    "connect_trading_account": Operation("POST", "/api/v3/tradingAccount/connect", True, TradingAccountResponse,
                                         (400, 401, 403, 404, 409, 500)),
    "update_trading_account": Operation("POST", "/api/v3/tradingAccount/update", True, TradingAccountResponse),
    "enable_trading_account": Operation("POST", "/api/v3/tradingAccount/enable", True, TradingAccountResponse),
    "disable_trading_account": Operation("POST", "/api/v3/tradingAccount/disable", True, TradingAccountResponse),
    "disconnect_trading_account": Operation("POST", "/api/v3/tradingAccount/disconnect", True,
                                            TradingAccountResponse),
    "list_trading_accounts": Operation("GET", "/api/v3/tradingAccount/list", True, TradingAccountListResponse),
    "create_trading_account_credential": Operation("POST", "/api/v3/credential/create", True, CredentialResponse),
    "verify_trading_account_credential": Operation("POST", "/api/v3/credential/verify", True, VerifyResponse),
    "rotate_trading_account_credential": Operation("POST", "/api/v3/credential/rotate", True, CredentialResponse),
    "revoke_trading_account_credential": Operation("POST", "/api/v3/credential/revoke", True, CredentialResponse),
    "list_trading_account_credentials": Operation("GET", "/api/v3/credential/list", True, CredentialListResponse,
                                                  (400, 401)),
    "list_trading_account_portfolios": Operation("GET", "/api/v3/tradingAccount/portfolio/list", True,
                                                 PortfolioListResponse),
}


class ApiException(Exception):
    """What the client raises for any status but 2xx: ``data`` is the parsed envelope only when the status is in
    the operation's map and the body fits BaseResponse."""

    def __init__(self, status: int, body: str, headers: httpx.Headers, data: BaseResponse | None) -> None:
        super().__init__(f"{status}: {body[:200]}")
        self.status, self.body, self.headers, self.data = status, body, headers, data


class SilentNone(Exception):
    """A 2xx other than 200: the client would have returned None without raising (never acceptable here)."""


def query_string(params: list[tuple[str, Any]]) -> str:
    """The client's query: parameters in order, None left out, lists as repeated keys, each value quoted."""
    pairs = []
    for name, value in params:
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            text = "true" if item is True else "false" if item is False else str(item)
            pairs.append(f"{name}={quote(text)}")
    return "&".join(pairs)


class Caller:
    """Calls operations the way the generated client does on the wire, and deserializes like it."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.access_token: str | None = None
        self.sent: list[httpx.Request] = []

    def close(self) -> None:
        self.http.close()

    def call(self, name: str, body: BaseModel | dict[str, Any] | None = None, *, send_body: bool | None = None,
             query: list[tuple[str, Any]] | None = None) -> BaseResponse:
        """Return the operation's 200 model; raise ApiException (any non-2xx) or SilentNone (other 2xx)."""
        op = OPERATIONS[name]
        headers = {"Accept": "application/json", "User-Agent": "OpenAPI-Generator/3.5.3/python"}
        if op.bearer and self.access_token is not None:
            headers["Authorization"] = f"Bearer {self.access_token}"
        content: bytes | None = None
        if op.method == "POST" and (send_body if send_body is not None else name != "auth_logout"):
            headers["Content-Type"] = "application/json"
            if isinstance(body, BaseModel):
                content = body.model_dump_json(exclude_none=True).encode()
            elif body is not None:
                import json

                content = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            else:
                content = b""
        url = op.path + ("?" + query_string(query) if query else "")
        request = self.http.build_request(op.method, url, headers=headers, content=content)
        self.sent.append(request)
        response = self.http.send(request)
        if response.status_code == 200:
            return op.model.model_validate_json(response.content)
        if 200 <= response.status_code < 300:
            raise SilentNone(response.status_code)
        data = None
        if response.status_code in op.error_map:
            try:
                data = BaseResponse.model_validate_json(response.content)
            except ValueError:
                data = None
        raise ApiException(response.status_code, response.text, response.headers, data)
