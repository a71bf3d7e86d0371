"""Audit log: append-only events; never a secret."""

from __future__ import annotations

import builtins
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from strongroom.db import Database, delete_in_batches
from strongroom.models import ApiKey, AuditEvent
from strongroom.pagination import Page, paginate
from strongroom.principal import Principal, accounts_within
from strongroom.scopes import READ

log = logging.getLogger("strongroom.audit")
_INSERT = AuditEvent.__table__.insert()  # built once (AuditService.write; ``at`` is the column's default)


# (action, client IP, reason, user, key, minute): the refusals one aggregate counts
_RefusalKind = tuple[str, str | None, str, int | None, str | None, int]


@dataclass
class _Aggregate:
    """Refusals of one kind from one client within one minute: one row, its count kept up to date."""

    details: dict[str, Any]
    count: int = 1
    row_id: int | None = None  # None while the first row is being written
    dirty: bool = False


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db
        # (action, client IP, reason, user, key, minute) -> aggregate; guarded (used from worker threads)
        self._refusals: dict[_RefusalKind, _Aggregate] = {}
        self._refusals_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time (see flush_refusals)

    def record(
        self,
        session: Session,
        action: str,
        outcome: str,
        *,
        principal: Principal | None = None,
        user_id: int | None = None,
        key_id: str | None = None,
        target: str | None = None,
        client_ip: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Add an event to ``session`` (it commits with the operation it describes)."""
        session.add(
            AuditEvent(
                actor_user_id=principal.user_id if principal else user_id,
                actor_key_id=principal.key_id if principal else key_id,
                action=action,
                target=target,
                client_ip=(principal.client_ip if principal else None) or client_ip,
                outcome=outcome,
                details=details or {},
            )
        )

    def write(
        self,
        session: Session,
        action: str,
        outcome: str,
        *,
        principal: Principal | None = None,
        user_id: int | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Insert an event at once in ``session``'s transaction with one Core statement (as :meth:`record`, without
        the ORM's unit of work: for hot paths that use none, such as an order's placement)."""
        session.execute(_INSERT, {
            "actor_user_id": principal.user_id if principal else user_id,
            "actor_key_id": principal.key_id if principal else None, "action": action, "target": target,
            "client_ip": principal.client_ip if principal else None, "outcome": outcome, "details": details or {}})

    def record_now(self, action: str, outcome: str, **kwargs: Any) -> None:
        """Write one event in its own transaction (refusals, whose operation rolled back)."""
        try:
            with self.db.session() as session:
                self.record(session, action, outcome, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the audit must never turn a refusal into a 500
            # type only: a database error's text carries the statement's parameters
            log.error("could not write audit event %s/%s: %s", action, outcome, type(exc).__name__)

    def refusal(self, action: str, reason: str, *, client_ip: str | None = None, user_id: int | None = None,
                key_id: str | None = None, details: dict[str, Any] | None = None) -> None:
        """Record a refusal, aggregated: the first refusal of its kind (action, client IP, reason,
        user, key) in a minute writes one row at once; later ones in that minute only add to its
        ``count`` (written by :meth:`flush_refusals`). A flood of bad credentials costs one write a
        minute per client and reason, not one per request. Never raises.
        """
        minute = int(time.time() // 60)
        key: _RefusalKind = (action, client_ip, reason, user_id, key_id, minute)
        with self._refusals_lock:
            aggregate = self._refusals.get(key)
            if aggregate is not None:
                aggregate.count += 1
                aggregate.dirty = True
                return
            aggregate = self._refusals[key] = _Aggregate({**(details or {}), "reason": reason, "count": 1})
        try:
            with self.db.session() as session:
                event = AuditEvent(actor_user_id=user_id, actor_key_id=key_id, action=action, client_ip=client_ip,
                                   outcome="refused", details=dict(aggregate.details))
                session.add(event)
                session.flush()
                row_id = event.id
        except Exception as exc:  # noqa: BLE001 - never raises: the audit must never turn a refusal into a 500
            log.error("could not write audit event %s/refused: %s", action, type(exc).__name__)
            with self._refusals_lock:
                self._refusals.pop(key, None)
            return
        with self._refusals_lock:
            aggregate.row_id = row_id

    def flush_refusals(self) -> int:
        """Write the counts of refusals aggregated since the last flush; forget past minutes.

        Returns how many rows were updated. Called periodically (and at shutdown); never raises. Waits
        for a flush in flight (in another thread) to finish first.
        """
        with self._flush_lock:
            return self._flush_refusals()

    def _flush_refusals(self) -> int:
        minute = int(time.time() // 60)
        with self._refusals_lock:
            due = [(a.row_id, {**a.details, "count": a.count}) for a in self._refusals.values()
                   if a.dirty and a.row_id is not None]
            for a in self._refusals.values():
                if a.row_id is not None:
                    a.dirty = False
            for key in [k for k, a in self._refusals.items() if k[-1] < minute and a.row_id is not None]:
                del self._refusals[key]
        if not due:
            return 0
        table = AuditEvent.__table__
        try:
            with self.db.session() as session:
                for row_id, details in due:
                    session.execute(table.update().where(table.c.id == row_id).values(details=details))
        except Exception as exc:  # noqa: BLE001 - never raises (a periodic task); logs the type only: a
            # database error's text carries parameters
            log.error("could not write audit counts: %s", type(exc).__name__)
            return 0
        return len(due)

    @staticmethod
    def _readable(session: Session, principal: Principal, query: Select[AuditEvent]) -> Select[AuditEvent]:
        """Narrow ``query`` to the events ``principal`` may read.

        The caller's own events (all events for admins). A key bound to accounts reads only what concerns
        them: events about those accounts (``account:<id>``), about the keys it sees (bound within its
        accounts, itself included) and what it did itself (it acts only within its binding).
        """
        if not principal.is_admin:
            query = query.where(AuditEvent.actor_user_id == principal.user_id)
        if principal.account_ids is None:
            return query
        keys = session.execute(select(ApiKey.key_id, ApiKey.account_ids).where(ApiKey.user_id == principal.user_id))
        targets = [f"account:{i}" for i in sorted(principal.account_ids)]
        targets += [f"api_key:{k}" for k, bound in keys if accounts_within(bound, principal.account_ids)]
        about = AuditEvent.target.in_(targets)
        return query.where(or_(about, AuditEvent.actor_key_id == principal.key_id) if principal.key_id else about)

    def list(
        self,
        principal: Principal,
        *,
        cursor: str | None = None,
        limit: int = 50,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        user_id: int | None = None,
    ) -> Page[AuditEvent]:
        """Return the events the caller may read (see ``_readable``), newest first; optionally only those of
        one action, outcome or acting user, at or after ``since`` and at or before ``until``."""
        principal.require(READ)
        query = select(AuditEvent)
        if action:
            query = query.where(AuditEvent.action == action)
        if since:
            query = query.where(AuditEvent.at >= since)
        if until:
            query = query.where(AuditEvent.at <= until)
        if outcome:
            query = query.where(AuditEvent.outcome == outcome)
        if user_id is not None:
            query = query.where(AuditEvent.actor_user_id == user_id)
        with self.db.session() as session:
            return paginate(session, self._readable(session, principal, query), AuditEvent.id, cursor, limit,
                            descending=True)

    def prune(self, before: datetime, batch: int = 5000) -> int:
        """Delete audit events from before ``before`` (the retention job, STRONGROOM_AUDIT_RETENTION_DAYS),
        ``batch`` rows per transaction, oldest first; return how many."""
        return delete_in_batches(self.db, AuditEvent.id, AuditEvent.at < before, batch)

    def after(self, principal: Principal, after_id: int, *, action: str | None = None,
              limit: int = 200) -> builtins.list[AuditEvent]:
        """Return up to ``limit`` events newer than event ``after_id``, oldest first (for following
        the log); the events the caller may read (see ``_readable``)."""
        principal.require(READ)
        query = select(AuditEvent).where(AuditEvent.id > after_id)
        if action:
            query = query.where(AuditEvent.action == action)
        with self.db.session() as session:
            return list(session.scalars(self._readable(session, principal, query).order_by(AuditEvent.id).limit(limit)))
