"""/v1/exchanges: the catalogue (public, no credentials needed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from strongroom.surfaces.deps import CatalogueDep
from strongroom.surfaces.native.schemas import ExchangeOut
from strongroom.surfaces.openapi import raises

api = APIRouter(prefix="/exchanges", tags=["exchanges"])


@api.get("", summary="List the exchanges and the credentials each needs.", response_model=list[ExchangeOut])
@raises(backing_services=False)
async def list_exchanges(catalogue: CatalogueDep) -> list[ExchangeOut]:
    """Every venue Strongroom can store credentials for, with the credential fields each needs (no
    authentication)."""
    return [ExchangeOut(**e.to_public()) for e in catalogue.all()]


@api.get("/{exchange}", summary="Read one exchange by id or alias.", response_model=ExchangeOut)
@raises(backing_services=False)
async def get_exchange(exchange: Annotated[str, Path(description="A catalogue id or alias, any case.",
                                                     examples=["binance"])], catalogue: CatalogueDep) -> ExchangeOut:
    """One exchange by id or alias (BINANCE, okex, COINBASE, CONCURRENCY.COM, ...): ``credentials`` lists the
    fields connecting an account needs (the ``credentials`` object of POST /v1/exchange-accounts),
    ``optional_credentials`` those it may add. An unknown name is 404, suggesting the nearest ids."""
    return ExchangeOut(**catalogue.get(exchange).to_public())
