"""The Trading App accounts API (seed 000) at /user/{id}/accounts, on the core's exchange accounts.

HTTP Basic (password, or API key id and secret). Bodies and errors are
``{"Status Code": n, "Message": "..."}`` as the seed documents them. Unlike the seed's sample,
listings never show secrets: ``api_key`` is the masked hint and ``secret_key`` is masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from strongroom.accounts import AccountQuery, ByCursor, ConnectPolicy, authorize_connect
from strongroom.errors import (
    AccountExists,
    AlreadyConnected,
    Conflict,
    ExchangeUnavailable,
    InvalidCredentials,
    WithdrawalPermission,
)
from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.http.routes import guarded
from strongroom.principal import Principal
from strongroom.surfaces.deps import AccountsDep, CatalogueDep, CurrentPrincipal
from strongroom.surfaces.openapi import raises

MASK = "********"
# The Trading App names an account by its exchange: one live account per exchange and user.
ONE_PER_EXCHANGE = ConnectPolicy(one_per_exchange=True)


def ok(message: str) -> JSONResponse:
    """The Trading App's success body."""
    return JSONResponse({"Status Code": 200, "Message": message})


def new_account_schema(schema: dict[str, Any]) -> None:
    """The body names the exchange ``exchange`` or ``Exchange`` (the seed's): document both; add examples."""
    properties = schema.get("properties", {})
    if "Exchange" in properties:
        properties["exchange"] = properties["Exchange"]
        schema["required"] = [r for r in schema.get("required", []) if r != "Exchange"]
        schema["anyOf"] = [{"required": ["exchange"]}, {"required": ["Exchange"]}]
    schema["examples"] = [
        {"exchange": "BINANCE", "api_key": "your-binance-api-key", "secret_key": "your-binance-secret"},
        {"Exchange": "OKX", "api_key": "your-okx-api-key", "secret_key": "your-okx-secret",
         "passphrase": "your-okx-passphrase"}]


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=new_account_schema)

    exchange: str = Field(min_length=1, max_length=64, validation_alias=AliasChoices("Exchange", "exchange"),
                          description="The exchange: the Trading App's spelling (BINANCE, BITMEX, CONCURRENCY.COM), a "
                                      "catalogue id or alias, any case (also sent as Exchange).", examples=["BINANCE"])
    api_key: str = Field(min_length=1, max_length=512, description="The exchange API key.",
                         examples=["your-binance-api-key"])
    secret_key: str = Field(min_length=1, max_length=4096, description="The exchange API secret.",
                            examples=["your-binance-secret"])
    passphrase: str | None = Field(None, max_length=512, description="The API key's passphrase, for venues that "
                                                                     "have one (OKX, KuCoin, ...).")
    name: str | None = Field(None, max_length=100, description="A name for the account.", examples=["main"])


class AccountOut(BaseModel):
    exchange: str = Field(description="The exchange in the Trading App's spelling.", examples=["BINANCE"])
    api_key: str = Field(description="A hint of the API key (its first and last 4 characters), never the key.",
                         examples=["vmPU…Eh8A"])
    secret_key: Literal["********"] = Field(description="Always masked.")


class AccountsOut(BaseModel):
    accounts: list[AccountOut] = Field(description="The user's live accounts (at most one per exchange).")


class Message(BaseModel):
    """The Trading App's success body."""

    model_config = ConfigDict(populate_by_name=True)

    status_code: Literal[200] = Field(alias="Status Code", description="Always 200.")
    message: str = Field(alias="Message", description="What was done.", examples=["Account successfully created"])


UserId = Annotated[int, Path(description="The user's id: the caller's own (an admin's: anyone's).", examples=[1])]


# where the seed's name is not the catalogue id in capitals
SEED_SPELLINGS = {"currencycom": "CONCURRENCY.COM"}


def seed_spelling(info: ExchangeInfo) -> str:
    """The seed writes exchanges in capitals (BINANCE, BITMEX, CONCURRENCY.COM); others: the id in capitals.

    (Not "the first capitalised alias": that showed OKX accounts under its former name OKEX.)
    """
    return SEED_SPELLINGS.get(info.id, info.id.upper())


api = APIRouter(prefix="/{user_id}/accounts", tags=["trading app"])



@api.get("", summary="List a user's exchange accounts.", response_model=AccountsOut)
async def get_accounts(user_id: UserId, principal: CurrentPrincipal, accounts: AccountsDep,
                       catalogue: CatalogueDep) -> dict[str, Any]:
    """All live accounts of user {id}; secrets masked."""
    page = await accounts.find(principal, AccountQuery(user_id=user_id, live_only=True), ByCursor(limit=200))
    return {"accounts": [
        {"exchange": seed_spelling(catalogue.get(a.exchange)), "api_key": a.key_hint, "secret_key": MASK}
        for a in page.items
    ]}


def may_connect(principal: Principal, path_params: Mapping[str, Any]) -> None:
    """Before the body of POST /user/{id}/accounts/new: the caller may connect accounts for {id}."""
    try:
        user_id = int(path_params["user_id"])
    except (KeyError, ValueError):
        return  # not an id: the route's own validation answers
    authorize_connect(principal, user_id)


@api.post("/new", summary="Connect an exchange account.", response_model=Message)
@guarded(may_connect)
@raises(InvalidCredentials, WithdrawalPermission, ExchangeUnavailable, AccountExists, AlreadyConnected, Conflict)
async def create_account(user_id: UserId, body: NewAccount, principal: CurrentPrincipal,
                         accounts: AccountsDep) -> JSONResponse:
    """Connect an exchange account (checked live, stored encrypted); one live account per exchange (422 for
    a second one), a key connected already is 409, credentials the exchange refuses are 400."""
    credentials = {"api_key": body.api_key, "secret": body.secret_key}
    if body.passphrase is not None:
        credentials["passphrase"] = body.passphrase
    await accounts.connect(principal, body.exchange, credentials, name=body.name, user_id=user_id, policy=ONE_PER_EXCHANGE)
    return ok("Account successfully created")


@api.delete("/{exchange_name}", summary="Disconnect the account on an exchange.", response_model=Message)
@raises(Conflict)
async def delete_account(user_id: UserId, exchange_name: Annotated[str, Path(
        description="The exchange: the Trading App's spelling (BINANCE), a catalogue id or alias, any case.",
        examples=["BINANCE"])], principal: CurrentPrincipal, accounts: AccountsDep) -> JSONResponse:
    """Disconnect user {id}'s account on an exchange (the Trading App's spelling, an id or an alias)."""
    await accounts.disconnect(principal, AccountQuery(user_id=user_id, exchange=exchange_name))
    return ok("Account successfully deleted")

