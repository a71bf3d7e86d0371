"""Audit log: append-only events; never a secret."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strongroom.db import Database
from strongroom.models import AuditEvent
from strongroom.pagination import Page, paginate
from strongroom.principal import Principal

log = logging.getLogger("strongroom.audit")


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

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

    def record_now(self, action: str, outcome: str, **kwargs: Any) -> None:
        """Write one event in its own transaction (refusals, whose operation rolled back)."""
        try:
            with self.db.session() as session:
                self.record(session, action, outcome, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the audit must never turn a refusal into a 500
            # type only: a database error's text carries the statement's parameters
            log.error("could not write audit event %s/%s: %s", action, outcome, type(exc).__name__)

    def list(
        self,
        principal: Principal,
        *,
        cursor: str | None = None,
        limit: int = 50,
        action: str | None = None,
        since: datetime | None = None,
    ) -> Page[AuditEvent]:
        """Return the caller's own events (all events for admins), newest first."""
        principal.require("read")
        query = select(AuditEvent)
        if not principal.is_admin:
            query = query.where(AuditEvent.actor_user_id == principal.user_id)
        if action:
            query = query.where(AuditEvent.action == action)
        if since:
            query = query.where(AuditEvent.at >= since)
        with self.db.session() as session:
            return paginate(session, query, AuditEvent.id, cursor, limit, descending=True)

    def after(self, principal: Principal, after_id: int, *, action: str | None = None,
              limit: int = 200) -> list[AuditEvent]:
        """Return up to ``limit`` events newer than event ``after_id``, oldest first (for following
        the log); the caller's own events, all events for admins."""
        principal.require("read")
        query = select(AuditEvent).where(AuditEvent.id > after_id)
        if not principal.is_admin:
            query = query.where(AuditEvent.actor_user_id == principal.user_id)
        if action:
            query = query.where(AuditEvent.action == action)
        with self.db.session() as session:
            return list(session.scalars(query.order_by(AuditEvent.id).limit(limit)))
