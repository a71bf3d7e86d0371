"""Fan-out: an event becomes one delivery per matching endpoint, in the event's own transaction.

:func:`fan_out` is the events listener (``strongroom.events.on_record``). It adds a ``pending`` delivery
for each enabled endpoint that may see the event (a user's endpoints: that user's events, which an
admin's ``all_users`` endpoints receive too; admin-only and deployment events: endpoints an admin
created; ``webhook.test``: the one endpoint it names) and
whose ``event_types`` include it (empty: all), then makes sure a delivery job will take it
(:func:`ensure_drain`). Everything commits or rolls back with the event.

A delivery job (kind :data:`DELIVER`, payload ``{"endpoint_id": N}``) sends every due delivery of its
endpoint. :func:`ensure_drain` enqueues one unless the endpoint's last one is still queued (not yet
claimed): that one will see this delivery, because on PostgreSQL the queued job's row is held
``FOR SHARE`` until this transaction commits (the claim's ``SKIP LOCKED`` passes over it meanwhile),
and on SQLite this transaction holds the database's write lock from its first write (no claim
commits in between). So one job carries many deliveries, and none is left without a job.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from types import EllipsisType

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from strongroom.db import rowcount, utcnow
from strongroom.enums import DeliveryStatus, EventType, JobStatus
from strongroom.events import RecordedEvent
from strongroom.jobs import enqueue
from strongroom.models import Job, WebhookDelivery, WebhookEndpoint

DELIVER = "webhooks.deliver"
SWEEP = "webhooks.sweep"
DELIVER_ATTEMPTS = 20  # a delivery job's own retries (a database fault, a crash): deliveries keep their own count


def new_endpoint_id() -> str:
    """Return a fresh endpoint id: ``wh_`` and 24 hex digits."""
    return "wh_" + secrets.token_hex(12)


def new_delivery_id() -> str:
    """Return a fresh delivery id: ``dlv_`` and 24 hex digits."""
    return "dlv_" + secrets.token_hex(12)


def wants(event_types: Iterable[str] | None, type: str) -> bool:
    """Return True if an endpoint subscribed to ``event_types`` (empty: all) receives events of ``type``."""
    chosen = list(event_types or [])
    return not chosen or type in chosen


def fan_out(session: Session, event: RecordedEvent) -> None:
    """The events listener: add ``event``'s deliveries in ``session`` (the event's transaction) and make sure a
    job sends them."""
    query = select(WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.drain_job_id).where(
        WebhookEndpoint.enabled.is_(True))
    if event.type == EventType.WEBHOOK_TEST:
        query = query.where(WebhookEndpoint.public_id == str(event.data.get("endpoint_id")))
    elif event.admin_only or event.user_id is None:
        query = query.where(WebhookEndpoint.created_by_admin.is_(True))
    else:
        query = query.where(or_(WebhookEndpoint.user_id == event.user_id,
                                and_(WebhookEndpoint.all_users.is_(True), WebhookEndpoint.created_by_admin.is_(True))))
    drains = {row.id: row.drain_job_id for row in session.execute(query)
              if event.type == EventType.WEBHOOK_TEST or wants(row.event_types, event.type)}
    if drains:
        add_deliveries(session, event.id, list(drains), drains)


def add_deliveries(session: Session, event_id: int, endpoint_ids: list[int],
                   drains: dict[int, int | None] | None = None) -> list[str]:
    """Add a pending delivery of event ``event_id`` to each endpoint, due now, and make sure jobs send them;
    return the deliveries' public ids. ``drains``: each endpoint's ``drain_job_id`` if the caller has read it."""
    now, stamp = time.time(), utcnow()
    ids = [new_delivery_id() for _ in endpoint_ids]
    session.execute(_ADD_DELIVERY, [
        {"public_id": public_id, "endpoint_id": endpoint_id, "event_id": event_id, "status": DeliveryStatus.PENDING,
         "attempts": 0, "next_attempt_at": now, "created_at": stamp, "updated_at": stamp}
        for public_id, endpoint_id in zip(ids, endpoint_ids, strict=True)])
    for endpoint_id in sorted(set(endpoint_ids)):  # one order everywhere: no deadlock between two fan-outs
        ensure_drain(session, endpoint_id, *((drains[endpoint_id],) if drains and endpoint_id in drains else ()))
    return ids


_ADD_DELIVERY = WebhookDelivery.__table__.insert()  # Core, built once: the ORM's bulk insert path cost more


def ensure_drain(session: Session, endpoint_id: int, last: int | None | EllipsisType = ...) -> None:
    """Make sure a delivery job that has not started yet will look at ``endpoint_id``'s due deliveries once
    ``session`` commits (see the module's docstring): reuse its queued job, else enqueue one. ``last``: the
    endpoint's ``drain_job_id`` if the caller read it in this transaction (read here otherwise); a value read
    before another fan-out replaced it costs at most one more job, never a delivery without one."""
    if last is ...:
        last = session.execute(select(WebhookEndpoint.drain_job_id).where(WebhookEndpoint.id == endpoint_id)).scalar()
    if last is not None:
        queued = select(Job.id).where(Job.id == last, Job.status == JobStatus.QUEUED, Job.run_at <= time.time())
        if session.execute(queued.with_for_update(read=True)).first() is not None:
            return
    job_id = enqueue(session, DELIVER, {"endpoint_id": endpoint_id}, max_attempts=DELIVER_ATTEMPTS)
    session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(drain_job_id=job_id)
                    .execution_options(synchronize_session=False))


def schedule_retry(session: Session, endpoint_id: int, at: float) -> bool:
    """Make sure a delivery job runs for ``endpoint_id`` at ``at`` (epoch seconds), when its retries are due.

    A compare-and-set on the endpoint's ``retry_at``: a job is enqueued only if none is due earlier (or the
    one recorded has passed). Returns True if one was enqueued.
    """
    now = time.time()
    taken = rowcount(session.execute(
        update(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id,
            (WebhookEndpoint.retry_at.is_(None)) | (WebhookEndpoint.retry_at > at) | (WebhookEndpoint.retry_at <= now))
        .values(retry_at=at).execution_options(synchronize_session=False)))
    if taken:
        enqueue(session, DELIVER, {"endpoint_id": endpoint_id}, run_at=at, max_attempts=DELIVER_ATTEMPTS)
    return taken == 1
