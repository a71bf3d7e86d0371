"""The Trading App accounts API (seed 000) at /user/{id}/accounts, on the core's exchange accounts.

HTTP Basic (password, or API key id and secret). Bodies and errors are
``{"Status Code": n, "Message": "..."}`` as the seed documents them. Unlike the seed's sample,
listings never show secrets: ``api_key`` is the masked hint and ``secret_key`` is masked.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse, Response

from strongroom.errors import DomainError, ValidationFailed
from strongroom.principal import Principal
from strongroom.services.auth import Scheme
from strongroom.surfaces.base import CoreDep, Surface

MESSAGES = {
    401: "Wrong Authentication credentials",
    403: "You do not have permission to perform this action",
}
MASK = "********"


def _message(error: DomainError) -> tuple[int, str]:
    if error.code in ("unauthenticated",):
        return 401, MESSAGES[401]
    if error.code in ("forbidden", "insufficient_scope"):
        return 403, MESSAGES[403]
    if error.code == "account_exists":
        return 422, "Account for that exchange already exists"
    if error.code == "conflict":
        return 409, "This exchange API key is already connected"
    if error.code == "validation_failed":
        named = ", ".join(f"{k}: {v}" for k, v in error.fields.items())
        return 422, f"Invalid request: {named}" if named else "Invalid request"
    if error.code == "bad_request" and error.status == 400:
        # a body that is not JSON at all (malformed JSON, bad Content-Length): 422 like any bad body here
        return 422, f"Invalid request: {error.message}"
    if error.code == "invalid_credentials":
        return 400, "Invalid exchange credentials"
    if error.code == "withdrawal_permission":
        return 400, "The exchange key can withdraw funds; use a key without withdrawal permission"
    if error.code == "exchange_unavailable":
        return 503, "The exchange could not be reached; try again later"
    if error.code == "not_found":
        return 404, _capitalized(error.message)
    if error.code == "rate_limited":
        return 429, "Too many requests"
    return error.status, _capitalized(error.message)


def _capitalized(message: str) -> str:
    """The seed's messages start with a capital letter."""
    return message[:1].upper() + message[1:]


class TradingAppSurface(Surface):
    name = "trading-app"
    prefix = "/user/"
    schemes = frozenset({Scheme.BASIC_PASSWORD, Scheme.BASIC_KEY})

    def render_error(self, error: DomainError) -> Response:
        status, message = _message(error)
        headers = {}
        if error.retry_after:
            headers["Retry-After"] = str(error.retry_after)
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="strongroom"'
        return JSONResponse({"Status Code": status, "Message": message}, status_code=status, headers=headers)

    def render_internal(self) -> Response:
        return JSONResponse({"Status Code": 500, "Message": "Internal server error"}, status_code=500)


SURFACE = TradingAppSurface()


def ok(message: str) -> JSONResponse:
    return JSONResponse({"Status Code": 200, "Message": message})


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    exchange: str = Field(min_length=1, max_length=64, validation_alias=AliasChoices("Exchange", "exchange"))
    api_key: str = Field(min_length=1, max_length=512)
    secret_key: str = Field(min_length=1, max_length=4096)
    passphrase: str | None = Field(None, max_length=512)
    name: str | None = Field(None, max_length=100)


# where the seed's name is not the catalogue id in capitals
SEED_SPELLINGS = {"currencycom": "CONCURRENCY.COM"}


def seed_spelling(info) -> str:
    """The seed writes exchanges in capitals (BINANCE, BITMEX, CONCURRENCY.COM); others: the id in capitals.

    (Not "the first capitalised alias": that showed OKX accounts under its former name OKEX.)
    """
    return SEED_SPELLINGS.get(info.id, info.id.upper())


CurrentPrincipal = Annotated[Principal, Depends(SURFACE.authenticated())]


async def new_account_body(user_id: int, request: Request, principal: CurrentPrincipal) -> NewAccount:
    """The POST body, read only after the caller is authenticated and allowed to write for {id}.

    (A body parameter would be parsed before authentication: an anonymous caller would get 422
    for a malformed body instead of 401.) Non-JSON content types and malformed JSON are 422.
    """
    request.app.state.core.accounts.authorize_connect(principal, user_id)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ValidationFailed("the body must be JSON", fields={"body": "Content-Type must be application/json"})
    try:
        return NewAccount.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None


def build_router() -> APIRouter:
    api = APIRouter(prefix="/user/{user_id}/accounts", route_class=SURFACE.route_class(), tags=["trading app"])

    @api.get("")
    def get_accounts(user_id: int, principal: CurrentPrincipal, core: CoreDep) -> dict:
        """All live accounts of user {id}; secrets masked."""
        page = core.accounts.list(principal, user_id=user_id, live_only=True, limit=200)
        return {"accounts": [
            {"exchange": seed_spelling(core.catalogue.get(a.exchange)), "api_key": a.key_hint, "secret_key": MASK}
            for a in page.items
        ]}

    @api.post("/new", openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": NewAccount.model_json_schema()}}}})
    async def create_account(user_id: int, body: Annotated[NewAccount, Depends(new_account_body)],
                       principal: CurrentPrincipal, core: CoreDep) -> JSONResponse:
        """Connect an exchange account (checked live, stored encrypted); one live account per exchange."""
        credentials = {"api_key": body.api_key, "secret": body.secret_key}
        if body.passphrase is not None:
            credentials["passphrase"] = body.passphrase
        await core.accounts.connect(principal, body.exchange, credentials, name=body.name, user_id=user_id,
                                    one_per_exchange=True)
        return ok("Account successfully created")

    @api.delete("/{exchange_name}")
    def delete_account(user_id: int, exchange_name: str, principal: CurrentPrincipal, core: CoreDep) -> JSONResponse:
        """Disconnect user {id}'s account on an exchange (seed spelling, id or alias)."""
        core.accounts.disconnect_on_exchange(principal, user_id, exchange_name)
        return ok("Account successfully deleted")

    return api
