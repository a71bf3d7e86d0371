"""Kalshi-compatible API keys (seed 004) at /trade-api/v2, on the core's keys.

Authentication: KALSHI-ACCESS-KEY / -TIMESTAMP (ms) / -SIGNATURE (RSA-PSS or Ed25519 over
timestamp + METHOD + path). Errors: ``{"error": {"code", "message"}}``. Status codes match
Kalshi's spec exactly, because the official SDKs deserialize by status.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from strongroom.auth.schemes import KALSHI
from strongroom.errors import BadRequest, ValidationFailed
from strongroom.http.errors import ErrorTable, Rendered, Rule
from strongroom.http.routes import Surface
from strongroom.settings import Settings


def render(error: Rendered) -> Response:
    return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=error.status)


class KalshiErrorDetail(BaseModel):
    code: str = Field(description="A stable, machine-readable code (Strongroom's: validation_failed, "
                                  "unauthenticated, not_found, ...).", examples=["not_found"])
    message: str = Field(description="What went wrong, for people.", examples=["api key not found"])


class KalshiError(BaseModel):
    """Kalshi's error body."""

    error: KalshiErrorDetail = Field(description="The error.")


# Kalshi's spec answers 400 for every invalid input (its SDKs deserialize by status).
ERRORS = ErrorTable(
    model=KalshiError,
    render=render,
    internal=lambda: JSONResponse({"error": {"code": "internal_error", "message": "internal server error"}},
                                  status_code=500),
    rules={ValidationFailed: Rule(status=400), BadRequest: Rule(status=400)},
)


NAME = "kalshi"
PREFIX = "/trade-api/v2"  # where it is mounted


def surface(settings: Settings) -> Surface:
    """The /trade-api/v2 surface: Kalshi's signed requests only."""
    from strongroom.surfaces.kalshi import routes

    return Surface(name=NAME, prefix=PREFIX, schemes=(KALSHI,), errors=ERRORS, routers=(routes.api,),
                   title="Kalshi-compatible API keys")
