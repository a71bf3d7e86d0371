"""The Trading App accounts API (seed 000) at /user/{id}/accounts, on the core's exchange accounts.

HTTP Basic (password, or API key id and secret). Bodies and errors are
``{"Status Code": n, "Message": "..."}`` as the seed documents them. Unlike the seed's sample,
listings never show secrets: ``api_key`` is the masked hint and ``secret_key`` is masked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from strongroom.exchanges.catalogue import ExchangeInfo
from strongroom.surfaces.deps import CoreDep, CurrentPrincipal

MASK = "********"


def ok(message: str) -> JSONResponse:
    """The seed's success body."""
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


def seed_spelling(info: ExchangeInfo) -> str:
    """The seed writes exchanges in capitals (BINANCE, BITMEX, CONCURRENCY.COM); others: the id in capitals.

    (Not "the first capitalised alias": that showed OKX accounts under its former name OKEX.)
    """
    return SEED_SPELLINGS.get(info.id, info.id.upper())


api = APIRouter(prefix="/{user_id}/accounts", tags=["trading app"])



@api.get("")
def get_accounts(user_id: int, principal: CurrentPrincipal, core: CoreDep) -> dict[str, Any]:
    """All live accounts of user {id}; secrets masked."""
    page = core.accounts.list(principal, user_id=user_id, live_only=True, limit=200)
    return {"accounts": [
        {"exchange": seed_spelling(core.catalogue.get(a.exchange)), "api_key": a.key_hint, "secret_key": MASK}
        for a in page.items
    ]}


@api.post("/new")
async def create_account(user_id: int, body: NewAccount, principal: CurrentPrincipal, core: CoreDep) -> JSONResponse:
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

