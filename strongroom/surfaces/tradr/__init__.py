"""TradrAPI-compatible account and user API keys (seed 003) at /tradr, on the core's keys.

Authentication: a Strongroom bearer key in the ``x-api-key`` header, or a /v1 access token
(``Authorization: Bearer sra_...``). Errors are NestJS-shaped ``{"statusCode", "message", "error"}``
with the domain's own statuses (401, 403, 404, 409, 422, 429, ...; 429 and 503 with Retry-After).
See routes.py for how TradrAPI's keys map onto Strongroom's.
"""

from __future__ import annotations

from http import HTTPStatus

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from strongroom.auth.schemes import AccessTokenScheme, BearerKeyScheme
from strongroom.errors import DomainError, ValidationFailed
from strongroom.http.errors import ErrorTable, Rendered, Rule
from strongroom.http.routes import Surface
from strongroom.settings import Settings

# NestJS's reason phrases (HTTPStatus says "Unprocessable Content" for 422 from Python 3.13 on).
PHRASES = {422: "Unprocessable Entity", 413: "Payload Too Large"}
# The core's field names, as this surface names them.
FIELD_NAMES = {"name": "friendlyName", "scopes": "roles", "account_ids": "accountIds", "ip_allowlist": "ips",
               "sort_by": "sortBy", "key_id": "id", "account_id": "accountId", "user_id": "userId"}


def phrase(status: int) -> str:
    """Return the reason phrase NestJS puts in ``error`` for ``status``."""
    try:
        return PHRASES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def invalid_fields(error: DomainError) -> str:
    """A validation failure's message: each field (by this surface's name) and what is wrong with it."""
    named = "; ".join(f"{FIELD_NAMES.get(k, k)}: {v}" for k, v in error.fields.items())
    return named or error.message


def render(error: Rendered) -> Response:
    return JSONResponse({"statusCode": error.status, "message": error.message, "error": phrase(error.status)},
                        status_code=error.status)


class TradrError(BaseModel):
    """NestJS's error body."""

    statusCode: int = Field(description="The HTTP status code.", examples=[404])
    message: str = Field(description="What went wrong, for people (a validation failure names each field).",
                         examples=["roles: at least one role"])
    error: str = Field(description="The HTTP status's reason phrase.", examples=["Not Found"])


ERRORS = ErrorTable(
    model=TradrError,
    render=render,
    internal=lambda: JSONResponse({"statusCode": 500, "message": "Internal server error",
                                   "error": "Internal Server Error"}, status_code=500),
    challenge='ApiKey header="x-api-key", Bearer realm="strongroom"',
    rules={ValidationFailed: Rule(message=invalid_fields)},
)


NAME = "tradr"
PREFIX = "/tradr"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /tradr surface: x-api-key bearer keys and /v1 access tokens."""
    from strongroom.surfaces.tradr import routes

    return Surface(
        name=NAME,
        prefix=PREFIX,
        schemes=(BearerKeyScheme(authorization=False, header="x-api-key"),
                 AccessTokenScheme(settings.bearer_key_prefix + "a")),
        errors=ERRORS,
        routers=(routes.api,),
        guards=(routes.may_write,),
        title="TradrAPI-compatible API keys",
    )
