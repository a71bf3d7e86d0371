"""Webhook endpoints as their owners manage them: create, list, read, change, delete, rotate the secret, send a
test event, read the deliveries and replay one. Every call takes the caller's principal: a user manages their
own endpoints (scope ``read`` to read, ``write`` to change), an admin every endpoint.

The signing secret (``whsec_``) or, for ``ed25519``, the public key (``whpk_``) is returned by create and
rotate-secret only; the secret and the private key are sealed (the vault's ``SEALED_TABLES``) and never
shown again. A rotation keeps the previous secret signing beside the new one for :data:`ROTATION_GRACE`.
"""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from strongroom.audit import AuditService
from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import ADMIN_ONLY_EVENTS, DeliveryStatus, EventType, WebhookSigning
from strongroom.errors import Conflict, Forbidden, LimitExceeded, NotFound, ValidationFailed
from strongroom.events import record
from strongroom.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from strongroom.pagination import Page, decode_cursor, encode_cursor
from strongroom.principal import Principal
from strongroom.scopes import READ, WRITE, Scope
from strongroom.settings import Settings
from strongroom.vault.services import Vault
from strongroom.webhooks import guard
from strongroom.webhooks.fanout import add_deliveries, new_endpoint_id
from strongroom.webhooks.signing import new_secret

ROTATION_GRACE = 86_400.0  # the previous secret signs beside the new one this long after a rotation
MAX_ENDPOINTS_PER_USER = 20
MAX_DESCRIPTION = 500
MAX_PAGE = 200


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as its owner sees it (never a secret)."""

    id: str
    user_id: int
    url: str
    description: str
    event_types: list[str]
    signing: WebhookSigning
    public_key: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    all_users: bool = False  # an admin's endpoint receiving every user's events


@dataclass(frozen=True)
class AttemptView:
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: float
    error_kind: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class DeliveryView:
    """One event to one endpoint, with every attempt so far (oldest first)."""

    id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptView]


def _epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).replace(microsecond=0)


def endpoint_view(row: WebhookEndpoint) -> EndpointView:
    """Return ``row`` as its owner sees it."""
    previous = row.previous_expires_at if row.previous_expires_at and row.previous_expires_at > time.time() else None
    return EndpointView(row.public_id, row.user_id, row.url, row.description, list(row.event_types or []),
                        row.signing, row.public_key, row.enabled, row.disabled_reason, row.failing_since,
                        _epoch(previous), row.created_at, row.updated_at, bool(row.all_users))


def _allow(principal: Principal, scope: Scope) -> None:
    """Let ``principal`` use webhooks with ``scope``. Webhooks are the user's: an endpoint receives the events of
    every account of theirs, so a key bound to some accounts may neither manage endpoints nor read their
    deliveries (it could point one elsewhere and receive what its binding keeps from it).
    Raises InsufficientScope, Forbidden (a bound key)."""
    principal.require(scope)
    if principal.account_ids is not None:
        raise Forbidden("a key bound to exchange accounts cannot manage webhooks: an endpoint receives the events "
                        "of every account of its user; use an unbound key or a session")


class WebhookService:
    """Webhook endpoints of one database."""

    def __init__(self, db: Database, settings: Settings, audit: AuditService, vault: Vault) -> None:
        self.db = db
        self.settings = settings
        self.audit = audit
        self.vault = vault

    # --- checks -------------------------------------------------------------------------------

    def _url(self, url: object) -> str:
        """Return ``url`` checked by the SSRF guard (a DNS lookup). Raises BadRequest / AddressRefused."""
        if not isinstance(url, str):
            raise ValidationFailed("url is a string", fields={"url": "a string"})
        guard.check_url(url, self.settings.webhook_allow_private)
        return url

    @staticmethod
    def _types(principal: Principal, types: object) -> list[str]:
        """Return ``types`` as a sorted list of known event types the principal may receive (empty: all).
        Raises ValidationFailed."""
        if types is None:
            return []
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types) or len(types) > 100:
            raise ValidationFailed("event_types is a list of event types", fields={"event_types": "a list"})
        known = {t.value for t in EventType}
        for i, name in enumerate(types):
            if name not in known:
                raise ValidationFailed(f"unknown event type {name[:64]!r}",
                                       fields={f"event_types.{i}": f"one of {', '.join(sorted(known))}"})
            if EventType(name) in ADMIN_ONLY_EVENTS and not principal.is_admin:
                raise ValidationFailed(f"{name} is delivered to endpoints admins create only",
                                       fields={f"event_types.{i}": "admin only"})
        return sorted(set(types))

    @staticmethod
    def _description(value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
            raise ValidationFailed(f"description is at most {MAX_DESCRIPTION} characters",
                                   fields={"description": f"at most {MAX_DESCRIPTION} characters"})
        return value

    def _owned(self, session: Session, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
        """Return the endpoint ``endpoint_id`` if the principal may act on it (its owner, or an admin); NotFound."""
        row = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.public_id == str(endpoint_id))
                             .execution_options(populate_existing=True))
        if row is None or not principal.acts_for(row.user_id):
            raise NotFound("webhook endpoint not found")
        return row

    def _hold_enabled(self, session: Session, principal: Principal, endpoint_id: str, row: WebhookEndpoint) -> None:
        """Keep ``row`` enabled until ``session``'s transaction ends, or raise: a no-op UPDATE conditional on
        ``enabled`` (the row's lock on PostgreSQL, the database's write lock on SQLite), so a disable cannot
        land between this check and the delivery added after it. Raises Conflict (disabled), NotFound (gone)."""
        held = rowcount(session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == row.id, WebhookEndpoint.enabled.is_(True))
            .values(enabled=WebhookEndpoint.enabled).execution_options(synchronize_session=False)))
        if held != 1:
            self._owned(session, principal, endpoint_id)  # NotFound if it was deleted meanwhile
            raise Conflict("the webhook endpoint is disabled: enable it first")

    # --- endpoints ----------------------------------------------------------------------------

    def create(self, principal: Principal, *, url: str, event_types: list[str] | None = None,
               description: str | None = None, signing: str = "hmac",
               all_users: bool = False) -> tuple[EndpointView, str]:
        """Create an endpoint of the caller's; return it and what is shown once: the ``whsec_`` secret (hmac) or
        the ``whpk_`` public key (ed25519). With ``all_users`` (admins only) it receives every user's events,
        not only the caller's.

        Raises InsufficientScope, ValidationFailed (all_users for a non-admin among them), BadRequest /
        AddressRefused (the URL), LimitExceeded (more than MAX_ENDPOINTS_PER_USER endpoints).
        """
        _allow(principal, WRITE)
        if all_users is not False and (all_users is not True or not principal.is_admin):
            raise ValidationFailed("all_users is for endpoints an admin creates",
                                   fields={"all_users": "admin only" if all_users is True else "true or false"})
        try:
            kind = WebhookSigning(signing)
        except ValueError:
            raise ValidationFailed("signing is hmac or ed25519", fields={"signing": "hmac or ed25519"}) from None
        types, about, url = self._types(principal, event_types), self._description(description), self._url(url)
        secret, public_key = new_secret(kind)
        public_id = new_endpoint_id()
        stamp = utcnow()
        with self.db.session() as session:
            # the user's row first: concurrent creates of one user take turns, so the cap holds
            session.execute(text("UPDATE users SET api_key_count = api_key_count WHERE id = :id"),
                            {"id": principal.user_id})
            count = session.scalar(select(func.count()).select_from(WebhookEndpoint)
                                   .where(WebhookEndpoint.user_id == principal.user_id)) or 0
            if count >= MAX_ENDPOINTS_PER_USER:
                raise LimitExceeded(f"a user has at most {MAX_ENDPOINTS_PER_USER} webhook endpoints")
            row = WebhookEndpoint(public_id=public_id, user_id=principal.user_id, created_by_admin=principal.is_admin,
                                  all_users=all_users, url=url, event_types=types, description=about, signing=kind,
                                  public_key=public_key, enabled=True, created_at=stamp, updated_at=stamp)
            for column, value in self.vault.seal_webhook_secrets(row, {"current": secret}).items():
                setattr(row, column, value)
            session.add(row)
            session.flush()
            self.audit.record(session, "webhook.create", "ok", principal=principal, target=f"webhook:{public_id}",
                              details={"signing": kind.value, "event_types": types, "all_users": all_users})
            view = endpoint_view(row)
        return view, public_key or secret

    def list(self, principal: Principal, *, cursor: str | None = None, limit: int = 50,
             user_id: int | None = None) -> Page[EndpointView]:
        """Return a page of endpoints, oldest first: the caller's own; an admin's: every user's (or ``user_id``'s).
        Raises InsufficientScope, ValidationFailed (cursor, limit)."""
        _allow(principal, READ)
        query = select(WebhookEndpoint)
        if not principal.is_admin:
            query = query.where(WebhookEndpoint.user_id == principal.user_id)
        elif user_id is not None:
            query = query.where(WebhookEndpoint.user_id == user_id)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", fields={"limit": "out of range"})
        if cursor:
            query = query.where(WebhookEndpoint.id > decode_cursor(cursor))
        with self.db.session() as session:
            rows = list(session.scalars(query.order_by(WebhookEndpoint.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page([endpoint_view(r) for r in rows], encode_cursor(rows[-1].id) if more and rows else None)

    def get(self, principal: Principal, endpoint_id: str) -> EndpointView:
        """Return one endpoint. Raises InsufficientScope, NotFound."""
        _allow(principal, READ)
        with self.db.session() as session:
            return endpoint_view(self._owned(session, principal, endpoint_id))

    def update(self, principal: Principal, endpoint_id: str, changes: dict[str, Any]) -> EndpointView:
        """Change ``url``, ``event_types``, ``description`` or ``enabled`` (enabling clears the reason and the
        failure streak). Raises InsufficientScope, NotFound, ValidationFailed, BadRequest / AddressRefused."""
        _allow(principal, WRITE)
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = self._url(changes["url"])
        if "event_types" in changes:
            values["event_types"] = self._types(principal, changes["event_types"])
        if "description" in changes:
            values["description"] = self._description(changes["description"])
        if "enabled" in changes:
            if not isinstance(changes["enabled"], bool):
                raise ValidationFailed("enabled is true or false", fields={"enabled": "a boolean"})
            values["enabled"] = changes["enabled"]
            values["disabled_reason"] = None if changes["enabled"] else "disabled by its owner"
            if changes["enabled"]:
                values["failing_since"] = None
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            if values:
                values["updated_at"] = utcnow()
                session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == row.id).values(**values)
                                .execution_options(synchronize_session=False))
                self.audit.record(session, "webhook.update", "ok", principal=principal,
                                  target=f"webhook:{row.public_id}", details={"changed": sorted(values)})
            session.expire_all()
            return endpoint_view(self._owned(session, principal, endpoint_id))

    def delete(self, principal: Principal, endpoint_id: str) -> None:
        """Delete an endpoint, its secrets and its delivery records. Raises InsufficientScope, NotFound."""
        _allow(principal, WRITE)
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            gone = rowcount(session.execute(WebhookEndpoint.__table__.delete().where(WebhookEndpoint.id == row.id)))
            if not gone:
                raise NotFound("webhook endpoint not found")
            self.audit.record(session, "webhook.delete", "ok", principal=principal, target=f"webhook:{row.public_id}")

    def rotate_secret(self, principal: Principal, endpoint_id: str) -> tuple[EndpointView, str]:
        """Give an endpoint a new signing secret (or Ed25519 key); the current one keeps signing beside it for
        24 h. Returns the endpoint and the new ``whsec_`` secret (or ``whpk_`` public key), shown once.

        A compare-and-set on the sealed secret read: of two concurrent rotations one wins, the other is a
        Conflict. Raises InsufficientScope, NotFound, Conflict.
        """
        _allow(principal, WRITE)
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            current = self.vault.open_webhook_secrets(row)["current"]
            secret, public_key = new_secret(row.signing)
            sealed = self.vault.seal_webhook_secrets(row, {"current": secret, "previous": current})
            done = rowcount(session.execute(
                update(WebhookEndpoint).where(WebhookEndpoint.id == row.id,
                                              WebhookEndpoint.secret_nonce == row.secret_nonce)
                .values(**sealed, public_key=public_key, previous_expires_at=time.time() + ROTATION_GRACE,
                        updated_at=utcnow()).execution_options(synchronize_session=False)))
            if not done:
                raise Conflict("the endpoint's secret was rotated by another request at the same time; try again")
            self.audit.record(session, "webhook.rotate_secret", "ok", principal=principal,
                              target=f"webhook:{row.public_id}")
            session.expire_all()
            view = endpoint_view(self._owned(session, principal, endpoint_id))
        return view, public_key or secret

    # --- deliveries ---------------------------------------------------------------------------

    def test(self, principal: Principal, endpoint_id: str) -> DeliveryView:
        """Send a ``webhook.test`` event to this endpoint only; return its delivery (pending).
        Raises InsufficientScope, NotFound, Conflict (the endpoint is disabled)."""
        _allow(principal, WRITE)
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            self._hold_enabled(session, principal, endpoint_id, row)
            event = record(session, EventType.WEBHOOK_TEST, user_id=row.user_id,
                           data={"endpoint_id": row.public_id, "message": "a test event from Strongroom"})
            delivery_id = session.execute(select(WebhookDelivery.id).where(
                WebhookDelivery.event_id == event.id, WebhookDelivery.endpoint_id == row.id)).scalar_one()
            return self._deliveries(session, [delivery_id])[0]

    def replay(self, principal: Principal, endpoint_id: str, delivery_id: str) -> DeliveryView:
        """Send a delivery's event to its endpoint again, as a new delivery (same ``webhook-id``); return it.
        Raises InsufficientScope, NotFound, Conflict (the endpoint is disabled)."""
        _allow(principal, WRITE)
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            event_id = session.execute(select(WebhookDelivery.event_id).where(
                WebhookDelivery.public_id == str(delivery_id), WebhookDelivery.endpoint_id == row.id)).scalar()
            if event_id is None:
                raise NotFound("delivery not found")
            self._hold_enabled(session, principal, endpoint_id, row)
            public_id = add_deliveries(session, event_id, [row.id])[0]
            new_id = session.execute(select(WebhookDelivery.id).where(WebhookDelivery.public_id == public_id)).scalar_one()
            self.audit.record(session, "webhook.replay", "ok", principal=principal, target=f"webhook:{row.public_id}",
                              details={"delivery": str(delivery_id)})
            return self._deliveries(session, [new_id])[0]

    def deliveries(self, principal: Principal, endpoint_id: str, *, cursor: str | None = None, limit: int = 50,
                   status: DeliveryStatus | None = None) -> Page[DeliveryView]:
        """Return a page of an endpoint's deliveries, newest first, each with its attempts.
        Raises InsufficientScope, NotFound, ValidationFailed (cursor, limit)."""
        _allow(principal, READ)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", fields={"limit": "out of range"})
        with self.db.session() as session:
            row = self._owned(session, principal, endpoint_id)
            query = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == row.id)
            if status is not None:
                query = query.where(WebhookDelivery.status == status)
            if cursor:
                query = query.where(WebhookDelivery.id < decode_cursor(cursor))
            ids = list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1)))
            more = len(ids) > limit
            ids = ids[:limit]
            return Page(self._deliveries(session, ids, status), encode_cursor(ids[-1]) if more and ids else None)

    @staticmethod
    def _deliveries(session: Session, ids: builtins.list[int],
                    status: DeliveryStatus | None = None) -> builtins.list[DeliveryView]:
        """Return the deliveries ``ids`` (in that order; only those still of ``status`` if given) with their
        attempts.

        One statement (deliveries outer-joined to their attempts), so one snapshot: under PostgreSQL's READ
        COMMITTED two statements could see a delivery still ``sending`` beside the attempt that ended it."""
        if not ids:
            return []
        query = (select(WebhookDelivery, Event.public_id, Event.type, WebhookAttempt)
                 .join(Event, Event.id == WebhookDelivery.event_id)
                 .outerjoin(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
                 .where(WebhookDelivery.id.in_(ids)).order_by(WebhookAttempt.id))
        if status is not None:  # its state may have moved on since the ids were chosen
            query = query.where(WebhookDelivery.status == status)
        found = session.execute(query).all()
        rows: dict[int, tuple[WebhookDelivery, str, str]] = {}
        log: dict[int, builtins.list[AttemptView]] = {}
        for d, event_public_id, type_, a in found:
            rows[d.id] = (d, event_public_id, str(type_))
            if a is not None:
                log.setdefault(d.id, []).append(
                    AttemptView(a.attempt, a.at, a.status_code, a.latency_ms, a.error_kind, a.response_excerpt))
        views = []
        for i in ids:
            if i not in rows:
                continue
            d, event_public_id, event_type = rows[i]
            waiting = d.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
            views.append(DeliveryView(d.public_id, event_public_id, event_type, d.status, d.attempts,
                                      _epoch(d.next_attempt_at) if waiting else None, d.last_status_code,
                                      d.created_at, d.delivered_at, log.get(d.id, [])))
        return views

    def find_delivery(self, delivery_id: str) -> tuple[str, str] | None:
        """Return ``(endpoint public id, delivery public id)`` of a delivery (operators: the CLI), or None."""
        with self.db.session() as session:
            row = session.execute(select(WebhookEndpoint.public_id, WebhookDelivery.public_id)
                                  .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                                  .where(WebhookDelivery.public_id == str(delivery_id))).first()
        return (row[0], row[1]) if row else None
