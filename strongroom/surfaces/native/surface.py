"""The native surface: /v1, errors as RFC 9457 application/problem+json."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import JSONResponse, Response

from strongroom.auth.schemes import KALSHI, NATIVE, AccessTokenScheme, BasicScheme, BearerKeyScheme
from strongroom.errors import RiskPolicyRefused
from strongroom.http.errors import ErrorTable, Rendered
from strongroom.http.routes import Surface
from strongroom.settings import Settings

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
PROBLEM = "application/problem+json"


def problem(status: int, code: str, detail: str, **extra: Any) -> Response:
    """Return an RFC 9457 problem document."""
    body = {"type": f"https://strongroom.dev/problems/{code}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, "code": code, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def render(error: Rendered) -> Response:
    extra: dict[str, Any] = {"errors": error.error.fields} if error.error.fields else {}
    if isinstance(error.error, RiskPolicyRefused):
        extra["rule"] = error.error.rule  # the policy field that refused (issue 19)
    return problem(error.status, str(error.code), error.message, **extra)


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``): every /v1 error."""

    type: str = Field(description="A URI naming the problem: https://strongroom.dev/problems/ and the code.",
                      examples=["https://strongroom.dev/problems/not_found"])
    title: str = Field(description="The HTTP status's reason phrase.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code (the same as the response's).", examples=[404])
    detail: str = Field(description="What went wrong, for people (never a secret).",
                        examples=["exchange account not found"])
    code: str = Field(description="A stable, machine-readable code: validation_failed, unauthenticated, "
                                  "insufficient_scope, not_found, conflict, credentials_rejected, rate_limited, ...",
                      examples=["not_found"])
    rule: str | SkipJsonSchema[None] = Field(
        None, description="Only for code risk_policy: the trading policy's field that refused (kill_switch, "
                          "allowed_symbols, max_notional_usd, ...; policy when the account has none).",
        examples=["max_notional_usd"])
    errors: dict[str, str] | SkipJsonSchema[None] = Field(
        None, description="Only when fields are named (validation): each field, as a dotted path (credentials.secret, "
                          "account_ids.0), and what is wrong with it.", examples=[{"name": "required"}])


# Every domain error keeps its own status and code here: /v1 is where they are defined.
ERRORS = ErrorTable(render=render, internal=lambda: problem(500, "internal", "an unexpected error occurred"),
                    challenge='Bearer realm="strongroom"', model=Problem)


NAME = "native"
PREFIX = "/v1"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /v1 surface: signed requests (native and Kalshi headers), access tokens, bearer keys
    (Authorization or X-API-Key), Basic."""
    from strongroom.surfaces.native import (
        accounts,
        api_keys,
        audit,
        auth,
        balances,
        events,
        exchanges,
        orders,
        users,
        verify,
        webhooks,
    )

    return Surface(
        name=NAME,
        prefix=PREFIX,
        schemes=(KALSHI, NATIVE, AccessTokenScheme(settings.bearer_key_prefix + "a"), BearerKeyScheme(), BasicScheme()),
        errors=ERRORS,
        routers=tuple(m.api for m in (auth, users, exchanges, accounts, balances, orders, api_keys, audit,
                                          events, verify, webhooks)),
        title="Strongroom /v1",
    )
