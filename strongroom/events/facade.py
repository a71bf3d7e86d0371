"""The events capability's façade (:class:`strongroom.events.interfaces.Events`, whose docstrings are the
contract): async, over the synchronous :class:`~strongroom.events.services.EventService`, whose database work
runs here in a worker thread, once per call, never in a surface."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import anyio.to_thread

from strongroom.events.services import EventService
from strongroom.models import Event
from strongroom.pagination import Page
from strongroom.principal import Principal


class EventsFacade:
    """The events façade over ``engine`` (see :class:`strongroom.events.interfaces.Events`)."""

    def __init__(self, engine: EventService) -> None:
        self.engine = engine

    async def list(self, principal: Principal, *, types: Iterable[str] | None = None, cursor: str | None = None,
                   limit: int = 50) -> Page[Event]:
        return await anyio.to_thread.run_sync(functools.partial(
            self.engine.list, principal, types=types, cursor=cursor, limit=limit))
