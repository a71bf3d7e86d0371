"""The stored credentials' façade (:class:`strongroom.accounts.interfaces.Credentials`, whose docstrings are the
contract): async, over the engine :class:`~strongroom.accounts.credentials.CredentialService`, whose database
work runs here in a worker thread (its exchange calls on the event loop), never in a surface.

(The accounts' own façade, :class:`~strongroom.accounts.services.AccountsFacade`, is beside its engine.)
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import anyio.to_thread

from strongroom.accounts.credentials import CredentialService
from strongroom.accounts.interfaces import Reach
from strongroom.models import ExchangeAccount, ExchangeCredential
from strongroom.pagination import OffsetPage
from strongroom.principal import Principal


class CredentialsFacade:
    """The stored credentials' façade over ``engine`` (see :class:`strongroom.accounts.interfaces.Credentials`)."""

    def __init__(self, engine: CredentialService) -> None:
        self.engine = engine

    async def create(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                     nickname: str | None = None, kind: str | None = None) -> ExchangeCredential:
        return await self.engine.create(principal, exchange, credentials, nickname=nickname, kind=kind)

    async def get(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        return await anyio.to_thread.run_sync(self.engine.get, principal, public_id)

    async def list(self, principal: Principal, *, kinds: Collection[str] | None = None,
                   statuses: Collection[str] | None = None, public_ids: Collection[uuid.UUID] | None = None,
                   offset: int = 0, limit: int = 1000) -> OffsetPage[ExchangeCredential]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.list, principal, kinds=kinds, statuses=statuses, public_ids=public_ids, offset=offset,
            limit=limit))

    async def linked(self, account_ids: Collection[int]) -> dict[int, ExchangeCredential]:
        ids = list(account_ids)
        return await anyio.to_thread.run_sync(self.engine.linked, ids) if ids else {}

    async def connect_inline(self, principal: Principal, exchange: str, credentials: Mapping[str, Any], *,
                             name: str | None = None, account_type: str | None = None,
                             kind: str | None = None) -> tuple[ExchangeAccount, ExchangeCredential]:
        return await self.engine.connect_inline(principal, exchange, credentials, name=name,
                                                account_type=account_type, kind=kind)

    async def connect(self, principal: Principal, public_id: uuid.UUID, *, exchange: str | None = None,
                      name: str | None = None, account_type: str | None = None
                      ) -> tuple[ExchangeAccount, ExchangeCredential]:
        return await self.engine.connect(principal, public_id, exchange=exchange, name=name,
                                         account_type=account_type)

    async def verify(self, principal: Principal, public_ids: Collection[uuid.UUID]) -> builtins.list[Reach]:
        return await self.engine.verify(principal, public_ids)

    async def rotate(self, principal: Principal, public_id: uuid.UUID, changes: Mapping[str, str]) -> ExchangeCredential:
        return await self.engine.rotate(principal, public_id, changes)

    async def revoke(self, principal: Principal, public_id: uuid.UUID) -> ExchangeCredential:
        return await anyio.to_thread.run_sync(self.engine.revoke, principal, public_id)
