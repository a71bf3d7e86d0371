"""The keys capability's façade (:class:`strongroom.keys.interfaces.Keys`, whose docstrings are the contract):
async, over the synchronous engine :class:`~strongroom.keys.services.ApiKeyService`, whose database work runs
here in a worker thread, once per call, never in a surface."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio.to_thread

from strongroom.keys.interfaces import ByPage, KeyNumber, KeyQuery
from strongroom.keys.services import ApiKeyService
from strongroom.models import ApiKey
from strongroom.pagination import Page
from strongroom.principal import Principal


def _listed(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


class KeysFacade:
    """The keys capability's façade over ``engine`` (see :class:`strongroom.keys.interfaces.Keys`)."""

    def __init__(self, engine: ApiKeyService) -> None:
        self.engine = engine

    async def create(self, principal: Principal, *, name: str, kind: str = "bearer",
                     scopes: Sequence[str] | None = None, account_ids: Sequence[int] | None = None,
                     ip_allowlist: Sequence[str] | None = None, expires_at: datetime | None = None,
                     public_key: str | None = None, upload_level: str | None = None) -> tuple[ApiKey, str | None]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.create, principal, name=name, kind=kind, scopes=_listed(scopes),
            account_ids=_listed(account_ids), ip_allowlist=_listed(ip_allowlist), expires_at=expires_at,
            public_key=public_key, upload_level=upload_level))

    async def import_public_key(self, principal: Principal, *, name: str, public_key: str,
                                **attrs: Any) -> ApiKey:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.import_public_key, principal, name=name, public_key=public_key, **attrs))

    async def generate(self, principal: Principal, *, name: str, key_type: str = "rsa",
                       **attrs: Any) -> tuple[ApiKey, str]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.generate, principal, name=name, key_type=key_type, **attrs))

    async def get(self, principal: Principal, key: str | KeyNumber) -> ApiKey:
        if isinstance(key, KeyNumber):
            return await anyio.to_thread.run_sync(functools.partial(
                self.engine.get_number, principal, key.number, kind=key.kind, single_account=key.single_account))
        return await anyio.to_thread.run_sync(self.engine.get, principal, key)

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50) -> Page[ApiKey]:
        return await anyio.to_thread.run_sync(functools.partial(self.engine.list, principal, cursor=cursor,
                                                                limit=limit))

    async def list_all(self, principal: Principal) -> builtins.list[ApiKey]:
        return await anyio.to_thread.run_sync(self.engine.list_all, principal)

    async def page(self, principal: Principal, query: KeyQuery, paging: ByPage) -> tuple[builtins.list[ApiKey], int]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.numbered_page, principal, page=paging.page, limit=paging.limit, sort_by=paging.sort_by,
            descending=paging.descending, kind=query.kind, bound_to=query.bound_to))

    async def update(self, principal: Principal, key: str | KeyNumber, changes: Mapping[str, Any]) -> ApiKey:
        if isinstance(key, KeyNumber):
            return await anyio.to_thread.run_sync(functools.partial(
                self.engine.update_number, principal, key.number, dict(changes), kind=key.kind,
                single_account=key.single_account))
        return await anyio.to_thread.run_sync(self.engine.update, principal, key, dict(changes))

    async def set_enabled(self, principal: Principal, key_id: str, enabled: bool) -> ApiKey:
        return await self.update(principal, key_id, {"enabled": enabled})

    async def roll(self, principal: Principal, key_id: str, grace_seconds: int = 0) -> tuple[ApiKey, str]:
        return await anyio.to_thread.run_sync(self.engine.roll, principal, key_id, grace_seconds)

    async def delete(self, principal: Principal, key: str | KeyNumber) -> None:
        if isinstance(key, KeyNumber):
            await anyio.to_thread.run_sync(functools.partial(
                self.engine.delete_number, principal, key.number, kind=key.kind, single_account=key.single_account))
            return
        await anyio.to_thread.run_sync(self.engine.delete, principal, key)

    async def usage(self, principal: Principal, key_id: str, since: datetime | None = None,
                    until: datetime | None = None) -> builtins.list[tuple[datetime, str, int]]:
        return await anyio.to_thread.run_sync(self.engine.usage, principal, key_id, since, until)

    async def require_user(self, principal: Principal, user_id: int) -> None:
        self.engine.require_user(principal, user_id)  # a comparison in memory: no thread

    async def require_account(self, principal: Principal, account_id: int) -> None:
        await anyio.to_thread.run_sync(self.engine.require_account, principal, account_id)
