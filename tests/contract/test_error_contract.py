"""The error contract: every surface answers every domain error in its own shape and status.

For each surface the application serves, and for each DomainError subclass, a route inside the
built surface raises the error; the answer must have the surface's body shape, the status this
table expects, Retry-After when the error has one, Allow on a 405, and never be a 500. A new
error class or a new surface fails here until its row is written down.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from strongroom import errors
from strongroom.app import surfaces
from strongroom.errors import DomainError
from strongroom.http.routes import build, mount
from strongroom.settings import Settings


def all_error_classes() -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    stack = [DomainError]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("strongroom") and sub not in found:
                found.append(sub)
                stack.append(sub)
    return sorted(found, key=lambda c: c.__name__)


RETRYING = {"RateLimited", "ExchangeUnavailable", "ServiceUnavailable", "OrderOutcomeUnknown"}


def instance(cls: type[DomainError]) -> DomainError:
    kwargs: dict[str, Any] = {"retry_after": 7} if any(c.__name__ in RETRYING for c in cls.__mro__) else {}
    if cls is errors.MethodNotAllowed:
        return errors.MethodNotAllowed(allow=("GET", "POST"))
    return cls("something is wrong", fields={"name": "required"}, **kwargs)


# --- what each surface must answer ----------------------------------------------------------------

def native_status(cls: type[DomainError]) -> int:
    return cls.status  # /v1 is where the statuses are defined


KALSHI_400 = {"ValidationFailed", "BadRequest"}


def kalshi_status(cls: type[DomainError]) -> int:
    return 400 if any(c.__name__ in KALSHI_400 for c in cls.__mro__) else cls.status


TRADING_APP = {
    "AccountExists": 422, "AlreadyConnected": 409, "BadRequest": 422, "MalformedBody": 422, "LimitExceeded": 400,
    "ValidationFailed": 422, "InvalidCredentials": 400, "WithdrawalPermission": 400, "ExchangeUnavailable": 503,
    "RateLimited": 429, "Unauthenticated": 401, "CredentialsRefused": 401, "SignatureInvalid": 401,
    "Forbidden": 403, "InsufficientScope": 403, "InsufficientUsageLevel": 403, "AmbiguousCredentials": 400,
    "AddressRefused": 422,  # a BadRequest, as the Trading App answers every bad request
}


def trading_app_status(cls: type[DomainError]) -> int:
    return TRADING_APP.get(cls.__name__, cls.status)


THREECOMMAS = {
    "BadRequest": 400, "MalformedBody": 400, "LimitExceeded": 400, "ValidationFailed": 400, "AlreadyConnected": 400,
    "AccountExists": 400, "WithdrawalPermission": 400, "NotFound": 404, "Unauthenticated": 401,
    "CredentialsRefused": 401, "SignatureInvalid": 401, "Forbidden": 403, "InsufficientScope": 403,
    "InsufficientUsageLevel": 403, "Conflict": 422, "CredentialsRejected": 422, "CredentialsUnreadable": 422,
    "ExchangeNotSupported": 422, "InvalidCredentials": 422, "RateLimited": 429, "IpNotAllowed": 401,
}
THREECOMMAS_CODES = {
    "ValidationFailed": "record_invalid", "AlreadyConnected": "record_invalid", "AccountExists": "record_invalid",
    "WithdrawalPermission": "record_invalid", "NotFound": "not_found", "Unauthenticated": "api_key_invalid_or_expired",
    "CredentialsRefused": "api_key_invalid_or_expired", "SignatureInvalid": "signature_invalid",
    "Forbidden": "access_denied", "InsufficientScope": "access_denied", "InsufficientUsageLevel": "access_denied",
    "InvalidCredentials": "invalid_api_key", "CredentialsRejected": "invalid_api_key",
    "IpNotAllowed": "api_key_invalid_or_expired", "AmbiguousCredentials": "ambiguous_credentials",
}


def threecommas_status(cls: type[DomainError]) -> int:
    return THREECOMMAS.get(cls.__name__, cls.status)


def threecommas_shape(body: Any, status: int, error: DomainError) -> None:
    """3Commas: {error: string, error_description: string, error_attributes?: {field: [messages]}}; py3cw
    reads any dict with an ``error`` key as a failure, and breaks on a non-string ``error``."""
    assert isinstance(body, dict) and set(body) <= {"error", "error_description", "error_attributes"}, body
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["error_description"], str), body
    assert body["error"] == THREECOMMAS_CODES.get(type(error).__name__, body["error"]), body
    if body["error"] == "record_invalid":
        attributes = body["error_attributes"]
        assert attributes and all(isinstance(v, list) and v and all(isinstance(m, str) for m in v)
                                  for v in attributes.values()), body
    else:
        assert "error_attributes" not in body, body


# Cadenza (/api/v3): 400 for every invalid input (never 422), 404 for what is not the caller's, the
# seed's 400 for keys the exchange refuses, 503 for an exchange that does not answer.
CADENZA = {
    "ValidationFailed": 400, "BadRequest": 400, "MalformedBody": 400, "LimitExceeded": 400, "InvalidCredentials": 400,
    "AmbiguousCredentials": 400,
    "CredentialsRejected": 400, "WithdrawalPermission": 400, "ExchangeNotSupported": 400, "NotSupported": 400,
    "Unauthenticated": 401,
    "CredentialsRefused": 401, "SignatureInvalid": 401, "SignInRefused": 401, "Forbidden": 403, "IpNotAllowed": 403,
    "InsufficientScope": 403, "InsufficientUsageLevel": 403, "NotFound": 404, "MethodNotAllowed": 405,
    "Conflict": 409, "AlreadyConnected": 409, "AccountExists": 409, "CredentialsUnreadable": 409,
    "PayloadTooLarge": 413, "RateLimited": 429, "ExchangeUnavailable": 503, "ServiceUnavailable": 503,
    # orders: Cadenza's market-connector errors (18006 insufficient funds, 18025 rejected, 18015 timeout)
    "InsufficientFunds": 400, "OrderRejected": 400, "OrderOutcomeUnknown": 504,
    "RiskPolicyRefused": 403,  # -22018, the rule in details.metadata.rule
    "AddressRefused": 400,  # a webhook URL the SSRF guard refuses (a BadRequest)
}


def cadenza_status(cls: type[DomainError]) -> int:
    return CADENZA[cls.__name__]


def cadenza_shape(body: Any, status: int, error: DomainError) -> None:
    assert {"data", "success", "errno", "error"} <= set(body) <= {"data", "success", "errno", "error", "details"}, body
    assert body["data"] is None and body["success"] is False, body
    assert type(body["errno"]) is int and body["errno"] < 0, body
    assert isinstance(body["error"], str) and body["error"][:1].isupper(), body


def native_shape(body: Any, status: int, error: DomainError) -> None:
    assert set(body) >= {"type", "title", "status", "detail", "code"}, body
    assert body["status"] == status and body["code"] == error.code


def kalshi_shape(body: Any, status: int, error: DomainError) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == error.code and body["error"]["message"]


def trading_app_shape(body: Any, status: int, error: DomainError) -> None:
    assert set(body) == {"Status Code", "Message"} and body["Status Code"] == status, body
    assert body["Message"][:1].isupper(), body


def tradr_status(cls: type[DomainError]) -> int:
    return cls.status  # NestJS-style: every domain error keeps its own status


TRADR_PHRASES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                 405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
                 429: "Too Many Requests", 503: "Service Unavailable", 504: "Gateway Timeout"}


def tradr_shape(body: Any, status: int, error: DomainError) -> None:
    assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == status, body
    assert isinstance(body["message"], str) and body["message"], body
    assert body["error"] == TRADR_PHRASES[status], body


CONTRACT: dict[str, tuple[Callable[[type[DomainError]], int], Callable[[Any, int, DomainError], None], str]] = {
    "native": (native_status, native_shape, "application/problem+json"),
    "kalshi": (kalshi_status, kalshi_shape, "application/json"),
    "trading-app": (trading_app_status, trading_app_shape, "application/json"),
    "tradr": (tradr_status, tradr_shape, "application/json"),
    "threecommas": (threecommas_status, threecommas_shape, "application/json"),
    "cadenza": (cadenza_status, cadenza_shape, "application/json"),
}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SETTINGS = Settings(data_dir="/nonexistent-not-used")
SURFACES = {s.name: s for s in surfaces(SETTINGS)}


def test_every_surface_has_a_contract(anyio_backend: str) -> None:
    assert set(SURFACES) == set(CONTRACT)


def client_for(name: str) -> tuple[httpx.AsyncClient, str]:
    surface = SURFACES[name]
    probe = APIRouter()

    @probe.get("/_contract/{error}")
    async def raise_error(error: str) -> None:
        if error == "Unexpected":
            raise RuntimeError("an unexpected failure with a secret-looking text sk_live_123")
        raise instance({c.__name__: c for c in all_error_classes()}[error])

    app = FastAPI()
    app.state.core = None
    app.state.trusted_proxies = []
    built = build(dataclasses.replace(surface, routers=(*surface.routers, probe)))
    mount(app, [built], built)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://contract"), surface.prefix


@pytest.mark.parametrize("surface", sorted(CONTRACT))
@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
async def test_surface_answers_error_in_its_shape(surface: str, cls: type[DomainError]) -> None:
    assert inspect.getmodule(cls) is errors or cls.__module__.startswith("strongroom")
    status_of, check_shape, media = CONTRACT[surface]
    client, prefix = client_for(surface)
    async with client:
        response = await client.get(f"{prefix}/_contract/{cls.__name__}")
    error = instance(cls)
    expected = status_of(cls)
    assert response.status_code == expected, (surface, cls.__name__, response.text)
    assert response.status_code != 500
    assert response.headers["content-type"].startswith(media)
    check_shape(response.json(), expected, error)
    if error.retry_after:
        assert response.headers["retry-after"] == "7"
    if cls is errors.MethodNotAllowed:
        assert response.headers["allow"] == "GET, POST"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("surface", sorted(CONTRACT))
async def test_unexpected_failure_is_a_bare_500(surface: str) -> None:
    client, prefix = client_for(surface)
    async with client:
        response = await client.get(f"{prefix}/_contract/Unexpected")
    assert response.status_code == 500
    assert "sk_live" not in response.text and "RuntimeError" not in response.text
    assert response.json()


@pytest.mark.parametrize("surface", sorted(CONTRACT))
async def test_routing_errors_in_shape(surface: str) -> None:
    """No route: 404; wrong method: 405 with Allow (the probe route only has GET)."""
    client, prefix = client_for(surface)
    status_of, check_shape, _ = CONTRACT[surface]
    async with client:
        missing = await client.get(f"{prefix}/_contract_nowhere/x")
        wrong = await client.post(f"{prefix}/_contract/NotFound")
    assert missing.status_code == status_of(errors.NotFound)
    check_shape(missing.json(), missing.status_code, errors.NotFound())
    assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
    check_shape(wrong.json(), 405, errors.MethodNotAllowed())
