"""The Trading App accounts API (seed 000) at /user/{id}/accounts, on the core's exchange accounts.

HTTP Basic (password, or API key id and secret). Bodies and errors are
``{"Status Code": n, "Message": "..."}`` as the seed documents them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from strongroom.auth.schemes import BasicScheme
from strongroom.errors import (
    AccountExists,
    AlreadyConnected,
    AmbiguousCredentials,
    BadRequest,
    DomainError,
    ExchangeUnavailable,
    Forbidden,
    InvalidCredentials,
    LimitExceeded,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.http.errors import ErrorTable, Rendered, Rule
from strongroom.http.routes import Surface
from strongroom.settings import Settings


def capitalized(error: DomainError) -> str:
    """The seed's messages start with a capital letter."""
    return error.message[:1].upper() + error.message[1:]


def invalid_request(error: DomainError) -> str:
    named = ", ".join(f"{k}: {v}" for k, v in error.fields.items())
    return f"Invalid request: {named}" if named else "Invalid request"


def render(error: Rendered) -> Response:
    return JSONResponse({"Status Code": error.status, "Message": error.message}, status_code=error.status)


class TradingAppError(BaseModel):
    """The Trading App's error body (the same shape as its success messages)."""

    model_config = ConfigDict(populate_by_name=True)

    status_code: int = Field(alias="Status Code", description="The HTTP status code.", examples=[401])
    message: str = Field(alias="Message", description="What went wrong, for people.",
                         examples=["Wrong Authentication credentials"])


ERRORS = ErrorTable(
    model=TradingAppError,
    render=render,
    internal=lambda: JSONResponse({"Status Code": 500, "Message": "Internal server error"}, status_code=500),
    challenge='Basic realm="strongroom"',
    rules={
        DomainError: Rule(message=capitalized),
        Unauthenticated: Rule(401, message="Wrong Authentication credentials"),
        Forbidden: Rule(403, message="You do not have permission to perform this action"),
        AccountExists: Rule(422, message="Account for that exchange already exists"),
        AlreadyConnected: Rule(409, message="This exchange API key is already connected"),
        ValidationFailed: Rule(422, message=invalid_request),
        # a body that is not JSON at all (malformed JSON, bad Content-Length): 422 like any bad body here
        BadRequest: Rule(422, message=lambda e: f"Invalid request: {e.message}"),
        LimitExceeded: Rule(message=capitalized),
        AmbiguousCredentials: Rule(400, message=capitalized),
        InvalidCredentials: Rule(400, message="Invalid exchange credentials"),
        WithdrawalPermission: Rule(
            400, message="The exchange key can withdraw funds; use a key without withdrawal permission"),
        ExchangeUnavailable: Rule(503, message="The exchange could not be reached; try again later"),
        RateLimited: Rule(429, message="Too many requests"),
    },
)


NAME = "trading-app"
PREFIX = "/user"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /user surface: HTTP Basic with a password or a key id and secret."""
    from strongroom.surfaces.tradingapp import routes

    return Surface(name=NAME, prefix=PREFIX, schemes=(BasicScheme(),), errors=ERRORS,
                   routers=(routes.api,), guards=(routes.may_connect,), title="Trading App accounts")
