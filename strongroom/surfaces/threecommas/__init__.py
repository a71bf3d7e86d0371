"""3Commas-compatible exchange accounts (seed 001) at /public/api/ver1, on the core's services.

Proven with py3cw 0.1.1, which works unchanged but for ``py3cw.request.API_URL``. Authentication:
``APIKEY`` (a Strongroom key id) and ``Signature``: hex HMAC-SHA256 (hmac keys) or base64 RSA PKCS#1
v1.5 SHA-256 (rsa keys) over the raw path, query and body (``SignedScheme`` ``threecommas()``).
Errors: ``{"error", "error_description", "error_attributes"?}`` as 3Commas answers them, always JSON.

Replay: 3Commas signs no time, so every repeat of a request is the same signature. A dashboard
repeats its reads (GET, and the reading POSTs ``load_balances``, ``pie_chart_data`` and
``account_table_data``) and must keep working, so those are never refused as replays; every other
POST (``new``, ``update``, ``rename``, ``remove``, ...) is refused when its exact signature
succeeded within the replay window (``2 x STRONGROOM_SIGNATURE_WINDOW_SECONDS + 1`` s, shared
through Redis when configured) or is being answered (concurrent duplicates run once); a write
answered with an error leaves its signature usable, so the client may retry it. A write captured and sent again later than that is not recognised:
the protocol carries nothing that could tell it from a new identical request (the README says so).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import JSONResponse, Response

from strongroom.auth.facts import RequestFacts
from strongroom.auth.schemes import threecommas
from strongroom.auth.schemes.signed import SAFE_METHODS
from strongroom.errors import (
    AccountExists,
    AlreadyConnected,
    AmbiguousCredentials,
    BadRequest,
    Conflict,
    CredentialsRejected,
    DomainError,
    Forbidden,
    InsufficientScope,
    InvalidCredentials,
    IpNotAllowed,
    NotFound,
    RateLimited,
    SignatureInvalid,
    Unauthenticated,
    ValidationFailed,
    WithdrawalPermission,
)
from strongroom.http.errors import ErrorTable, Rendered, Rule
from strongroom.http.routes import Surface
from strongroom.settings import Settings

RECORD_INVALID = "record_invalid"
INVALID_PARAMETERS = "Invalid parameters"
ALREADY_CONNECTED = "This account is already connected!"
# the core's field messages in 3Commas' words
FIELD_MESSAGES = {"required": "is missing", "unknown field": "is not allowed",
                  "must be a non-empty string": "is invalid", "unknown exchange": "does not have a valid value"}
# POSTs that only read (3Commas' ACCOUNTS_READ): repeating them is not a replay
READING_POSTS = frozenset({"load_balances", "pie_chart_data", "account_table_data"})


def replay_guarded(facts: RequestFacts) -> bool:
    """Return True for the requests whose repeat within the window is refused: every POST (or other
    unsafe method) but the reading ones (:data:`READING_POSTS`)."""
    if facts.method.upper() in SAFE_METHODS:
        return False
    return facts.path.rsplit("/", 1)[-1] not in READING_POSTS


def capitalized(error: DomainError) -> str:
    return error.message[:1].upper() + error.message[1:]


def attributes(error: DomainError) -> dict[str, list[str]]:
    """Return ``error_attributes``: ``{field: [message]}`` in 3Commas' field names and words."""
    if isinstance(error, AlreadyConnected):
        return {"api_key": [ALREADY_CONNECTED]}
    if isinstance(error, WithdrawalPermission):
        return {"api_key": [capitalized(error)]}
    if isinstance(error, AccountExists):
        return {"type": [capitalized(error)]}
    return {name: [FIELD_MESSAGES.get(message, message)] for name, message in error.fields.items()}


def render(error: Rendered) -> Response:
    body: dict[str, Any] = {"error": str(error.code), "error_description": error.message}
    if error.code == RECORD_INVALID:
        found = attributes(error.error)
        if found:
            body["error_attributes"] = found
    return JSONResponse(body, status_code=error.status)


BAD_EXCHANGE_KEYS = Rule(422, "invalid_api_key", "API keys are no longer valid or incorrect.")
INVALID_RECORD = Rule(400, RECORD_INVALID, INVALID_PARAMETERS)

class ThreeCommasError(BaseModel):
    """3Commas' error body."""

    error: str = Field(description="A stable code: record_invalid, api_key_invalid_or_expired, signature_invalid, "
                                   "access_denied, not_found, invalid_api_key, not_supported, rate_limited, ...",
                       examples=["record_invalid"])
    error_description: str = Field(description="What went wrong, for people.", examples=["Invalid parameters"])
    error_attributes: dict[str, list[str]] | SkipJsonSchema[None] = Field(
        None, description="Only with record_invalid: each invalid parameter and what is wrong with it.",
        examples=[{"name": ["is missing"]}])


ERRORS = ErrorTable(
    model=ThreeCommasError,
    render=render,
    internal=lambda: JSONResponse({"error": "unknown_error", "error_description": "Unknown error occurred"},
                                  status_code=500),
    rules={
        DomainError: Rule(message=capitalized),
        BadRequest: Rule(400, "bad_request", message=capitalized),
        AmbiguousCredentials: Rule(400, "ambiguous_credentials", message=capitalized),
        ValidationFailed: INVALID_RECORD,
        AlreadyConnected: INVALID_RECORD,
        AccountExists: INVALID_RECORD,
        WithdrawalPermission: INVALID_RECORD,
        NotFound: Rule(404, "not_found", "Not Found"),
        Unauthenticated: Rule(401, "api_key_invalid_or_expired", "Unauthorized. Invalid or expired api key."),
        SignatureInvalid: Rule(401, "signature_invalid", "Provided signature is invalid"),
        Forbidden: Rule(403, "access_denied", capitalized),
        # 3Commas answers a request from outside a key's IP whitelist like an unknown key
        IpNotAllowed: Rule(401, "api_key_invalid_or_expired", "Unauthorized. Invalid or expired api key."),
        InsufficientScope: Rule(403, "access_denied", "Api key doesn't have enough permissions"),
        Conflict: Rule(422, message=capitalized),  # account state (disconnected meanwhile, unreadable, ...)
        InvalidCredentials: BAD_EXCHANGE_KEYS,
        CredentialsRejected: BAD_EXCHANGE_KEYS,
        RateLimited: Rule(429, message="Too many requests"),
    },
)


NAME = "threecommas"
PREFIX = "/public/api"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /public/api surface: 3Commas' signed requests only."""
    from strongroom.surfaces.threecommas import routes

    scheme = threecommas(ignore_body_variant=settings.threecommas_unsigned_body_variant,
                         replay_guarded=replay_guarded)
    return Surface(name=NAME, prefix=PREFIX, schemes=(scheme,), errors=ERRORS,
                   routers=(routes.api,), guards=(routes.may_connect, routes.may_write),
                   title="3Commas-compatible accounts")
