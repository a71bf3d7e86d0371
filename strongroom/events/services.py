"""Reading and pruning events (``GET /v1/events``, the retention job).

Who reads what: a user their own events (never an admin-only one); an admin every event, the
deployment's (``user_id`` None) and admin-only ones too; a key bound to accounts only the events
about those accounts (``data.account_id``) and about the keys it sees (``data.key_id``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, delete, false, or_, select
from sqlalchemy.orm import Session

from strongroom.db import Database, delete_in_batches, utcnow
from strongroom.enums import EventType
from strongroom.errors import ValidationFailed
from strongroom.models import ApiKey, Event, EventMark
from strongroom.pagination import Page, paginate
from strongroom.principal import Principal, accounts_within
from strongroom.scopes import READ

TYPES = tuple(EventType)
PRUNE_BATCH = 5000
MARKS_KEPT = timedelta(days=60)


def parse_types(values: Iterable[str] | None) -> builtins.list[EventType] | None:
    """Return the event types named by ``values`` (each a type or a comma list of types; repeats and blanks
    ignored), or None when none is named (every type).

    Raises ValidationFailed naming ``type`` for a name that is not an event type.
    """
    names = [part.strip() for value in (values or ()) for part in str(value).split(",") if part.strip()]
    if not names:
        return None
    unknown = sorted(set(names) - set(TYPES))
    if unknown:
        raise ValidationFailed(f"unknown event type: {', '.join(unknown)[:200]}",
                               fields={"type": f"one of {', '.join(TYPES)}"})
    return [EventType(n) for n in dict.fromkeys(names)]


class EventService:
    """The event log, read by the caller's rights; pruned by the retention job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, principal: Principal, *, types: Iterable[str] | None = None, cursor: str | None = None,
             limit: int = 50) -> Page[Event]:
        """Return a page of the events ``principal`` may read, newest first, of ``types`` (None: all; see
        :func:`parse_types`).

        Raises InsufficientScope (no ``read``), ValidationFailed (unknown type, cursor, limit).
        """
        principal.require(READ)
        wanted = parse_types(types)
        query = select(Event)
        if wanted is not None:
            query = query.where(Event.type.in_(wanted))
        with self.db.session() as session:
            query = query.where(*self._readable(session, principal))
            return paginate(session, query, Event.id, cursor, limit, descending=True)

    @staticmethod
    def _readable(session: Session, principal: Principal) -> builtins.list[ColumnElement[bool]]:
        """The conditions that narrow events to those ``principal`` may read (see the module's docstring)."""
        if principal.is_admin and principal.account_ids is None:
            return []
        where: builtins.list[ColumnElement[bool]] = [Event.user_id == principal.user_id]
        if not principal.is_admin:
            where.append(Event.admin_only == false())
        if principal.account_ids is not None:

            keys = session.execute(select(ApiKey.key_id, ApiKey.account_ids)
                                   .where(ApiKey.user_id == principal.user_id))
            seen = [k for k, bound in keys if accounts_within(bound, principal.account_ids)]
            about = [Event.data["account_id"].as_integer().in_(sorted(principal.account_ids) or [-1])]
            if seen:
                about.append(Event.data["key_id"].as_string().in_(seen))
            where.append(or_(*about))
        return where

    def query(self) -> Select[tuple[Event]]:
        """Return a SELECT of every event (tests and tools that count)."""
        return select(Event)

    def prune(self, before: datetime, batch: int = PRUNE_BATCH) -> int:
        """Delete events created before ``before``, ``batch`` rows per transaction; return how many.

        The marks of once-only notices (``event_marks``) go too once older than both ``before`` and
        :data:`MARKS_KEPT`: by then no scan would write their notice again (the expiry scan looks back 30
        days; a failure-budget window is minutes long).
        """
        marks_before = min(before, utcnow() - MARKS_KEPT)
        with self.db.session() as session:
            session.execute(delete(EventMark).where(EventMark.created_at < marks_before))
        return delete_in_batches(self.db, Event.id, Event.created_at < before, batch)
