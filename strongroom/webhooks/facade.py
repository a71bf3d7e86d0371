"""The webhooks capability's façade (:class:`strongroom.webhooks.interfaces.Webhooks`, whose docstrings are the
contract): async, over the synchronous :class:`~strongroom.webhooks.services.WebhookService`, whose database
work (and a URL's DNS check) runs here in a worker thread, once per call, never in a surface."""

from __future__ import annotations

import functools
from typing import Any

import anyio.to_thread

from strongroom.enums import DeliveryStatus
from strongroom.pagination import Page
from strongroom.principal import Principal
from strongroom.webhooks.services import DeliveryView, EndpointView, WebhookService


class WebhooksFacade:
    """The webhooks façade over ``engine`` (see :class:`strongroom.webhooks.interfaces.Webhooks`)."""

    def __init__(self, engine: WebhookService) -> None:
        self.engine = engine

    async def create(self, principal: Principal, *, url: str, event_types: list[str] | None = None,
                     description: str | None = None, signing: str = "hmac",
                     all_users: bool = False) -> tuple[EndpointView, str]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.create, principal, url=url, event_types=event_types, description=description,
            signing=signing, all_users=all_users))

    async def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50,
                   user_id: int | None = None) -> Page[EndpointView]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.list, principal, cursor=cursor, limit=limit, user_id=user_id))

    async def get(self, principal: Principal, endpoint_id: str) -> EndpointView:
        return await anyio.to_thread.run_sync(self.engine.get, principal, endpoint_id)

    async def update(self, principal: Principal, endpoint_id: str, changes: dict[str, Any]) -> EndpointView:
        return await anyio.to_thread.run_sync(self.engine.update, principal, endpoint_id, changes)

    async def delete(self, principal: Principal, endpoint_id: str) -> None:
        await anyio.to_thread.run_sync(self.engine.delete, principal, endpoint_id)

    async def rotate_secret(self, principal: Principal, endpoint_id: str) -> tuple[EndpointView, str]:
        return await anyio.to_thread.run_sync(self.engine.rotate_secret, principal, endpoint_id)

    async def test(self, principal: Principal, endpoint_id: str) -> DeliveryView:
        return await anyio.to_thread.run_sync(self.engine.test, principal, endpoint_id)

    async def replay(self, principal: Principal, endpoint_id: str, delivery_id: str) -> DeliveryView:
        return await anyio.to_thread.run_sync(self.engine.replay, principal, endpoint_id, delivery_id)

    async def deliveries(self, principal: Principal, endpoint_id: str, *, cursor: str | None = None, limit: int = 50,
                         status: DeliveryStatus | None = None) -> Page[DeliveryView]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.deliveries, principal, endpoint_id, cursor=cursor, limit=limit, status=status))
