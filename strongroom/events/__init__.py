"""Events: what happened, written in the same transaction as the change (an outbox).

:func:`record` adds an event in the CALLER's session: the event exists if and only if the caller's
transaction commits, so a revoked key always has its ``api_key.revoked`` and a rolled-back change
has none. Listeners registered with :func:`on_record` (the webhooks capability: one fan-out job)
run inside the same session, so what they write commits or rolls back with the event.

An event's ``data`` is a JSON object describing the subject (ids, names, statuses, times): never a
secret, never a library's error text.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from strongroom.db import utcnow
from strongroom.enums import ADMIN_ONLY_EVENTS, EventType
from strongroom.events.interfaces import Events
from strongroom.models import Event, EventMark

# built once (a Core insert on the table: no ORM bulk path, no statement built per event)
_INSERT = insert(Event.__table__).returning(Event.__table__.c.id)


@dataclass(frozen=True)
class RecordedEvent:
    """An event as written: what :func:`record` returns and listeners receive."""

    id: int
    public_id: str
    type: EventType
    user_id: int | None
    admin_only: bool
    data: dict[str, Any]
    created_at: datetime


Listener = Callable[[Session, RecordedEvent], None]
_listeners: list[Listener] = []


def on_record(listener: Listener) -> None:
    """Call ``listener(session, event)`` for every event recorded from now on, in the recording
    transaction (idempotent: a listener registered twice runs once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def new_public_id() -> str:
    """Return a fresh event id, ``evt_`` and 24 hex digits."""
    return "evt_" + secrets.token_hex(12)


def record(session: Session, type: EventType, *, user_id: int | None, data: dict[str, Any] | None = None,
           admin_only: bool | None = None) -> RecordedEvent:
    """Add an event of ``type`` for ``user_id`` in ``session``'s transaction; return it.

    ``admin_only`` defaults to whether ``type`` is an admin-only type (``master_key.rotated``).
    ``data`` must be JSON and hold no secret.
    """
    event = RecordedEvent(
        id=0, public_id=new_public_id(), type=EventType(type), user_id=user_id,
        admin_only=(type in ADMIN_ONLY_EVENTS) if admin_only is None else admin_only,
        data=dict(data or {}), created_at=utcnow(),
    )
    event_id = session.execute(_INSERT, {
        "public_id": event.public_id, "type": event.type, "user_id": event.user_id, "admin_only": event.admin_only,
        "data": event.data, "created_at": event.created_at,
    }).scalar_one()
    event = RecordedEvent(int(event_id), event.public_id, event.type, event.user_id, event.admin_only,
                          event.data, event.created_at)
    for listener in tuple(_listeners):
        listener(session, event)
    return event


def record_once(session: Session, mark: str, type: EventType, *, user_id: int | None,
                data: dict[str, Any] | None = None) -> RecordedEvent | None:
    """:func:`record` an event only if no event was recorded under ``mark`` before (in ``session``'s
    transaction, like :func:`record`); return it, or None if ``mark`` was taken already.

    The mark (``api_key.expiring:<key id>:<expiry>``, ...) is a primary key inserted with
    ``ON CONFLICT DO NOTHING``: of concurrent writers exactly one writes the event, on both databases
    (PostgreSQL makes the others wait for its commit and then skip; SQLite serialises writers). A
    rolled-back transaction leaves neither the mark nor the event, so the next run writes both.
    """
    values = {"mark": mark[:200], "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":  # (imported here: the dialect is not loaded on SQLite)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(EventMark).values(values).on_conflict_do_nothing(index_elements=["mark"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(EventMark).values(values).on_conflict_do_nothing(index_elements=["mark"])
    taken = session.execute(statement.returning(EventMark.mark)).first()
    if taken is None:
        return None
    event = record(session, type, user_id=user_id, data=data)
    session.execute(update(EventMark).where(EventMark.mark == mark[:200]).values(event_id=event.id))
    return event


def marked(session: Session, marks: Iterable[str]) -> set[str]:
    """Return those of ``marks`` under which an event was recorded already (one query: a scan skips them
    before trying :func:`record_once` one by one, which stays the guard against a concurrent writer)."""
    wanted = [m[:200] for m in marks]
    if not wanted:
        return set()
    return set(session.scalars(select(EventMark.mark).where(EventMark.mark.in_(wanted))))


__all__ = ["EventType", "Events", "Listener", "RecordedEvent", "marked", "new_public_id", "on_record", "record", "record_once"]
