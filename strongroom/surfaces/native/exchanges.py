"""/v1/exchanges: the catalogue (public, no credentials needed)."""

from __future__ import annotations

from fastapi import APIRouter

from strongroom.surfaces.deps import CoreDep
from strongroom.surfaces.native.schemas import ExchangeOut

api = APIRouter(prefix="/exchanges", tags=["exchanges"])


@api.get("", response_model=list[ExchangeOut])
async def list_exchanges(core: CoreDep) -> list[ExchangeOut]:
    return [ExchangeOut(**e.to_public()) for e in core.catalogue.all()]


@api.get("/{exchange}", response_model=ExchangeOut)
async def get_exchange(exchange: str, core: CoreDep) -> ExchangeOut:
    """One exchange by id or alias (BINANCE, okex, COINBASE, CONCURRENCY.COM, ...)."""
    return ExchangeOut(**core.catalogue.get(exchange).to_public())
