"""Cadenza-compatible trading accounts (seed 002) at /api/v3, on the core.

Two kinds of client use it unchanged: the seed's docs page (``POST /api/v3/tradingAccount/connect``
with keys inline, a Bearer token, the envelope ``{data, success, errno, error}``) and Cadenza's
generated Python client ``cadenza_client`` 3.5.4 (a stored credential: create -> verify -> connect).
Authentication: Strongroom's own access tokens (from ``/api/v3/auth/login`` or ``/v1/auth/token``:
the same sessions). Every answer is the envelope, success or not, with an integer ``errno``
(negative on errors, as Cadenza's HTTP API sends them).

Statuses. The client deserializes by status: any 2xx other than 200 makes it return None, so
success is always 200. Errors use their HTTP meaning; the client raises the matching exception
class for every status (``BadRequestException`` 400, ``UnauthorizedException`` 401,
``NotFoundException`` 404, ``ConflictException`` 409, ``ServiceException`` 5xx) and parses the
envelope into ``e.data`` where the operation lists the status. Where the issue's list and the
client's maps differ, the HTTP meaning wins:

* invalid input is 400, never 422 (422 is in no operation's map, and the docs page says 400);
* another user's account or credential is 404 (never telling whether it exists), not 403;
* an exchange that does not answer is 503 with Retry-After (Cadenza's own 18012 "exchange not
  available" is a 503). The client raises ServiceException with the envelope in ``e.body``;
  a 500 would be in its map but would tell the caller the server is broken, not to retry;
* a conflict (the key is another user's; the account is already disconnected) is 409 on every
  operation; only connect lists it, elsewhere the client still raises ConflictException.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import JSONResponse, Response

from strongroom.auth.schemes import AccessTokenScheme
from strongroom.errors import (
    AlreadyConnected,
    BadRequest,
    Conflict,
    CredentialsRejected,
    CredentialsUnreadable,
    DomainError,
    ExchangeNotSupported,
    ExchangeUnavailable,
    Forbidden,
    InsufficientFunds,
    InvalidCredentials,
    LimitExceeded,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    NotSupported,
    OrderOutcomeUnknown,
    OrderRejected,
    PayloadTooLarge,
    RateLimited,
    RiskPolicyRefused,
    ServiceUnavailable,
    SignInRefused,
    Unauthenticated,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.http.errors import ErrorTable, Rendered, Rule
from strongroom.http.routes import Surface
from strongroom.settings import Settings
from strongroom.surfaces.cadenza.vocabulary import WIRE_FIELDS, venue

# errno by HTTP status, for an error class without a rule of its own (Cadenza's 19xxx web codes)
ERRNO_BY_STATUS = {400: -19001, 401: -19002, 403: -22018, 404: -22016, 405: -19001, 409: -22017, 413: -19001,
                   422: -19004, 429: -18011, 503: -19006}
INTERNAL_ERRNO = -19000


def capitalized(error: DomainError) -> str:
    return error.message[:1].upper() + error.message[1:]


def wire_field(name: str) -> str:
    return WIRE_FIELDS.get(name, name)


def invalid_request(error: DomainError) -> str:
    named = "; ".join(f"{wire_field(k)}: {v}" for k, v in error.fields.items())
    return f"Invalid request: {named}" if named else f"Invalid request: {error.message}"


def on_venue(text: str) -> Any:
    """A message naming the error's venue (``details["exchange"]``, set by the core) as Cadenza spells it."""

    def message(error: DomainError) -> str:
        exchange = error.details.get("exchange")
        return f"{text} for {venue(exchange)}" if isinstance(exchange, str) else text

    return message


def withdrawal(error: DomainError) -> str:
    exchange = error.details.get("exchange")
    where = f" on {venue(exchange)}" if isinstance(exchange, str) else ""
    return f"Invalid API key: it can withdraw funds{where}; use a key without withdrawal permission"


def render(error: Rendered) -> Response:
    errno = error.code if isinstance(error.code, int) else ERRNO_BY_STATUS.get(error.status, INTERNAL_ERRNO)
    body: dict[str, Any] = {"data": None, "success": False, "errno": errno, "error": error.message}
    if isinstance(error.error, RiskPolicyRefused):  # the policy field that refused (issue 19)
        body["details"] = {"code": error.error.code, "metadata": {"rule": error.error.rule}}
    elif error.error.fields:
        body["details"] = {"code": error.error.code,
                           "metadata": {wire_field(k): v for k, v in error.error.fields.items()}}
    return JSONResponse(body, status_code=error.status)


def internal() -> Response:
    return JSONResponse({"data": None, "success": False, "errno": INTERNAL_ERRNO, "error": "Internal server error"},
                        status_code=500)


class CadenzaErrorDetails(BaseModel):
    code: str = Field(description="Strongroom's code of the error.", examples=["validation_failed"])
    metadata: dict[str, str] = Field(description="Each invalid field (Cadenza's name) and what is wrong with it; for "
                                                 "code risk_policy, rule: the trading policy's field that refused.",
                                     examples=[{"apiKey": "required"}])


class CadenzaError(BaseModel):
    """Cadenza's envelope of an error."""

    data: None = Field(description="Always null on an error.")
    success: Literal[False] = Field(description="Always false on an error.")
    errno: int = Field(description="Cadenza's error number, negative: -19004 invalid request, -19002 unauthorized, "
                                   "-22016 not found, -22017 conflict, -22018 forbidden (also risk_policy), -120001 "
                                   "invalid API credentials, -18006 insufficient funds, -18025 order rejected, -18011 rate "
                                   "limited, -18012 exchange not available, ...", examples=[-22016])
    error: str = Field(description="What went wrong, for people.", examples=["Exchange account not found"])
    details: CadenzaErrorDetails | SkipJsonSchema[None] = Field(
        None, description="Only when fields are named (validation), or a risk policy refused (its rule).")


ERRORS = ErrorTable(
    model=CadenzaError,
    render=render,
    internal=internal,
    challenge='Bearer realm="strongroom"',
    rules={
        DomainError: Rule(message=capitalized),
        ValidationFailed: Rule(400, -19004, message=invalid_request),
        BadRequest: Rule(400, -19001, message=capitalized),
        MalformedBody: Rule(400, -19005, message=lambda e: f"Invalid JSON: {e.message}"),
        LimitExceeded: Rule(400, -22015, message=capitalized),
        # the seed's example, verbatim: errno -120001, "Invalid API credentials for BINANCE"
        InvalidCredentials: Rule(400, -120001, message=on_venue("Invalid API credentials")),
        CredentialsRejected: Rule(400, -120001, message=on_venue("Invalid API credentials")),
        WithdrawalPermission: Rule(400, -22006, message=withdrawal),
        ExchangeNotSupported: Rule(400, -22020, message=capitalized),
        NotSupported: Rule(400, -22019, message=capitalized),  # Cadenza's 22019 "operation unsupported"
        Unauthenticated: Rule(401, -19002, message="Unauthorized"),
        SignInRefused: Rule(401, -100001, message="Invalid login credentials"),
        Forbidden: Rule(403, -22018, message=capitalized),
        RiskPolicyRefused: Rule(403, -22018, message=capitalized),  # details.metadata.rule names the field
        NotFound: Rule(404, -22016, message=capitalized),
        MethodNotAllowed: Rule(405, -19001, message="Method not allowed"),
        Conflict: Rule(409, -22017, message=capitalized),
        AlreadyConnected: Rule(409, -22017, message="This exchange account is already connected"),
        CredentialsUnreadable: Rule(409, -22008, message=capitalized),
        PayloadTooLarge: Rule(413, -19001, message=capitalized),
        RateLimited: Rule(429, -18011, message="Rate limit exceeded"),
        ExchangeUnavailable: Rule(503, -18012, message="Exchange not available; try again later"),
        # Cadenza's market-connector errnos: 18006 insufficient funds, 18025 order rejected, 18015 request timeout
        InsufficientFunds: Rule(400, -18006, message=capitalized),
        OrderRejected: Rule(400, -18025, message=capitalized),
        OrderOutcomeUnknown: Rule(504, -18015, message=capitalized),
        ServiceUnavailable: Rule(503, -19006, message="Service unavailable; try again shortly"),
    },
)


NAME = "cadenza"
PREFIX = "/api/v3"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /api/v3 surface: Strongroom access tokens as Bearer tokens."""
    from strongroom.surfaces.cadenza import routes

    return Surface(name=NAME, prefix=PREFIX, schemes=(AccessTokenScheme(settings.bearer_key_prefix + "a"),),
                   errors=ERRORS, routers=(routes.api,), title="Cadenza-compatible trading accounts")


__all__ = ["ERRORS", "NAME", "PREFIX", "surface"]
