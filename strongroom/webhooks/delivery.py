"""Sending deliveries: the delivery job (kind ``webhooks.deliver``) and the sweep (``webhooks.sweep``).

A delivery job sends its endpoint's due deliveries in batches: it claims up to :data:`BATCH` of them with one
conditional UPDATE (``pending`` and due, or ``sending`` under this same job: a run of it that died), posts
them at once (at most :data:`PARALLEL` in flight, over this process's kept-alive connections to that receiver), and
records every outcome of the batch in one transaction: its attempt row, the delivery's new state, and
the endpoint's (``failing_since``; disabled after a ``410 Gone`` or after failing for
``STRONGROOM_WEBHOOK_DISABLE_AFTER_DAYS``, with a ``webhook.disabled`` event).

Exactly per Standard Webhooks: the body is ``{"type", "timestamp", "data"}``; the headers are
``webhook-id`` (the event's id: the same on every attempt and every endpoint), ``webhook-timestamp`` (the
attempt's, epoch seconds) and ``webhook-signature`` (``v1,`` HMAC or ``v1a,`` Ed25519, one per secret in
force). A 2xx delivers; ``410`` disables the endpoint; anything else (or no answer within
``STRONGROOM_WEBHOOK_TIMEOUT_SECONDS``) is retried after the next delay of the schedule, jittered ±10 %,
or after the answer's ``Retry-After`` (capped at 24 h), until the schedule is spent (then ``failed``).

The SSRF guard runs again before each batch: the host is resolved once, vetted, and the connection made
to that address (the URL's name goes in the Host header and the TLS SNI, and the certificate is checked
against it); proxies from the environment are ignored and redirects are not followed.

The HTTP is httpcore's (the transport under httpx) without httpx's client on top: a delivery needs none of
its cookies, redirects, URL merging or decoding, and they cost about half of a delivery's CPU. Connections
are kept per receiver *and TLS name* (scheme, address, port, name), so a connection whose certificate was
checked for one name never carries a delivery for another name that resolves to the same address. Each
receiver has PARALLEL lanes, one httpcore pool of one connection each, and a batch's k-th sender uses
lane k: httpcore's pool scans all its connections twice per request, which with PARALLEL connections in one
pool was a fifth of a delivery's CPU.

A worker killed mid-batch loses nothing: its job's lease expires, the job runs again and takes back the
deliveries it held. A receiver may then get a delivery twice (the same ``webhook-id``: receivers
de-duplicate by it, as the spec says). A run that stalls past its lease without dying stops at its next
claim (each claim checks, in its transaction, that the run still holds the lease), so at most the batch
it had in flight is sent twice, never the new run's.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import ssl
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import certifi
import httpcore
from anyio import to_thread
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from strongroom.crypto.envelope import DecryptionError
from strongroom.crypto.keyring import KeyringError
from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import DeliveryStatus, EventType, JobStatus
from strongroom.errors import BadRequest
from strongroom.events import record
from strongroom.jobs import ClaimedJob, JobFailed, lease_held
from strongroom.models import Event, Job, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from strongroom.settings import Settings
from strongroom.vault.services import Vault
from strongroom.webhooks import guard
from strongroom.webhooks.fanout import ensure_drain, schedule_retry
from strongroom.webhooks.signing import Signer

log = logging.getLogger("strongroom.webhooks")

BATCH = 100  # deliveries claimed and recorded together
PARALLEL = 8  # requests in flight per batch, and connections (lanes) per receiver
MAX_POOLS = 16  # receivers whose connections are kept per event loop (at most PARALLEL each)
KEEPALIVE_SECONDS = 5.0  # a receiver's connections are closed after this long unused (httpx's default)
BUDGET_SECONDS = 30.0  # a job hands over to a follow-up job after this long (others get a turn)
EXCERPT = 200  # characters of the answer kept
MAX_RETRY_AFTER = 86_400.0
KEEP_DAYS = 30  # finished deliveries (and their attempts) are deleted this long after their last change
USER_AGENT = b"Strongroom-Webhooks/1"
AttemptCounter = Callable[[str], None]  # outcome: delivered, retry, failed, gone


@dataclass(frozen=True)
class Item:
    """One claimed delivery: what is sent, and how many attempts it had before this one."""

    id: int
    attempts: int
    msg_id: str
    body: bytes


@dataclass(frozen=True)
class Batch:
    endpoint_id: int
    user_id: int
    url: str
    signer: Signer
    items: list[Item]


@dataclass(frozen=True)
class Outcome:
    """One attempt's result. ``status_code`` None: no answer (``error_kind`` says why)."""

    item: Item
    at: datetime
    status_code: int | None
    latency_ms: float
    error_kind: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """Return a delivery's body: ``{"type", "timestamp", "data"}`` as compact JSON (the same on every attempt)."""
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": str(type), "timestamp": stamp, "data": data}, separators=(",", ":")).encode()


def retry_after(value: str | None) -> float | None:
    """Return a ``Retry-After`` header's delay in seconds (delta or HTTP date), capped at 24 h; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER)


def excerpt_of(raw: bytes) -> str | None:
    """Return the first characters of an answer, printable (control characters as spaces), or None if empty."""
    text = raw[: EXCERPT * 4].decode("utf-8", "replace")[:EXCERPT]
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text or None


@functools.cache
def ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The TLS context of every delivery: certificates checked against certifi's CAs (as httpx's default) and the
    operator's ``ca_file`` (``STRONGROOM_WEBHOOK_CA_FILE``) if set."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


Origin = tuple[str, str, int, str]  # scheme, address, port, TLS name


@dataclass
class _Pool:
    """One receiver's lanes (see the module's docstring), how many batches are using them now, and when one last
    took or gave them back (monotonic seconds)."""

    lanes: list[httpcore.AsyncConnectionPool]
    users: int = 0
    used_at: float = 0.0

    async def aclose(self) -> None:
        for lane in self.lanes:
            await lane.aclose()


class Deliverer:
    """Sends the deliveries of one database (one per process: its connections are shared by every job)."""

    def __init__(self, db: Database, vault: Vault, settings: Settings, count: AttemptCounter | None = None) -> None:
        self.db = db
        self.vault = vault
        self.settings = settings
        self.delays = settings.webhook_retry_delays
        self.count = count
        self.sqlite = db.engine.dialect.name == "sqlite"
        timeout = settings.webhook_timeout_seconds
        self._extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
        # each event loop's pools, the least recently taken first
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Origin, _Pool]] = (
            weakref.WeakKeyDictionary())

    # --- HTTP -------------------------------------------------------------------------------------

    def _take(self, origin: Origin) -> _Pool:
        """Return this loop's pool for ``origin`` (made if needed), marked in use and most recently taken."""
        pools = self._pools.setdefault(asyncio.get_running_loop(), {})
        found = pools.pop(origin, None)
        if found is None:
            ca_file = self.settings.webhook_ca_file
            context = ssl_context(str(ca_file) if ca_file else None) if origin[0] == "https" else None
            found = _Pool([httpcore.AsyncConnectionPool(ssl_context=context, max_connections=1, keepalive_expiry=
                                                        KEEPALIVE_SECONDS) for _ in range(PARALLEL)])
        pools[origin] = found
        found.users += 1
        found.used_at = time.monotonic()
        return found

    async def _give_back(self, taken: _Pool) -> None:
        """Mark ``taken`` free again, then :meth:`close_idle`."""
        taken.users -= 1
        taken.used_at = time.monotonic()
        await self.close_idle()

    async def close_idle(self) -> None:
        """Close this loop's free pools unused for KEEPALIVE_SECONDS, and the least recently taken free ones
        beyond MAX_POOLS (a pool in use is never closed). Run after each batch and by the sweep."""
        pools = self._pools.setdefault(asyncio.get_running_loop(), {})
        surplus, stale = len(pools) - MAX_POOLS, time.monotonic() - KEEPALIVE_SECONDS
        for origin, pool in list(pools.items()):
            if pool.users == 0 and (surplus > 0 or pool.used_at < stale):
                del pools[origin]
                surplus -= 1
                await pool.aclose()

    async def aclose(self) -> None:
        """Close this loop's connections (new ones are made if used again)."""
        for pool in self._pools.pop(asyncio.get_running_loop(), {}).values():
            await pool.aclose()

    async def send(self, batch: Batch) -> list[Outcome]:
        """Post every delivery of ``batch`` (at most PARALLEL at once) to the vetted address; return the outcomes
        (in the batch's order)."""
        try:
            target = guard.parse(batch.url)
            address = await guard.resolve_async(target, self.settings.webhook_allow_private)
        except BadRequest:
            at = utcnow()
            return [Outcome(item, at, None, 0.0, "address_refused") for item in batch.items]
        host = f"[{address}]" if address.version == 6 else str(address)
        url = f"{target.scheme}://{host}:{target.port}{target.path}".encode("ascii")
        default_port = target.port == (443 if target.scheme == "https" else 80)
        name = f"[{target.host}]" if ":" in target.host else target.host
        fixed = [(b"host", (name if default_port else f"{name}:{target.port}").encode("ascii")),
                 (b"content-type", b"application/json"), (b"user-agent", USER_AGENT)]
        extensions: dict[str, Any] = dict(self._extensions)
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        taken = self._take((target.scheme, str(address), target.port, target.host))
        outcomes: list[Outcome | None] = [None] * len(batch.items)
        queue = iter(enumerate(batch.items))

        async def sender(lane: httpcore.AsyncConnectionPool) -> None:  # each posts one item after the other
            for n, item in queue:
                outcomes[n] = await self._post(lane, url, fixed, extensions, batch.signer, item)

        try:
            await asyncio.gather(*(sender(lane) for lane in taken.lanes[:len(batch.items)]))
        finally:
            await self._give_back(taken)
        return [o for o in outcomes if o is not None]

    @staticmethod
    async def _post(pool: httpcore.AsyncConnectionPool, url: bytes, fixed: list[tuple[bytes, bytes]],
                    extensions: dict[str, Any], signer: Signer, item: Item) -> Outcome:
        """Post one delivery; return its outcome (an error's type only: a library's text is never stored)."""
        timestamp = int(time.time())
        headers = [*fixed, (b"content-length", b"%d" % len(item.body)), (b"webhook-id", item.msg_id.encode()),
                   (b"webhook-timestamp", b"%d" % timestamp),
                   (b"webhook-signature", signer.signature(item.msg_id, timestamp, item.body).encode())]
        at, start = utcnow(), time.perf_counter()
        try:
            async with pool.stream(b"POST", url, headers=headers, content=item.body, extensions=extensions) as answer:
                raw = b""
                async for chunk in answer.aiter_stream():
                    raw += chunk
                    if len(raw) >= EXCERPT * 4:
                        break
            latency = (time.perf_counter() - start) * 1000
            status = answer.status
            later = next((v for k, v in answer.headers if k.lower() == b"retry-after"), None)
            return Outcome(item, at, status, latency, None if 200 <= status < 300 else "status", excerpt_of(raw),
                           retry_after(later.decode("latin-1") if later is not None else None))
        except httpcore.TimeoutException:
            kind = "timeout"
        except httpcore.ConnectError:
            kind = "connect"
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            kind = type(exc).__name__[:32]
        return Outcome(item, at, None, (time.perf_counter() - start) * 1000, kind)

    # --- the delivery job -------------------------------------------------------------------------

    async def drain(self, job: ClaimedJob) -> None:
        """The ``webhooks.deliver`` handler: send the due deliveries of ``job``'s endpoint, batch after batch."""
        endpoint_id = job.payload.get("endpoint_id")
        if not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
            raise JobFailed("the job's payload names no endpoint_id", permanent=True)
        deadline = time.monotonic() + BUDGET_SECONDS
        while True:
            batch = await to_thread.run_sync(self.claim, endpoint_id, job.id, job)
            if batch is None:
                return
            if batch.items:
                outcomes = await self.send(batch)
                await to_thread.run_sync(self.record, batch, outcomes, job.id)
            if len(batch.items) < BATCH:
                break
            if time.monotonic() > deadline:
                break
        await to_thread.run_sync(self.plan, endpoint_id)

    def _mine(self, endpoint_id: int, job_id: int, now: float) -> Any:
        return and_(WebhookDelivery.endpoint_id == endpoint_id, or_(
            and_(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.claim_job_id == job_id)))

    def claim(self, endpoint_id: int, job_id: int, lease: ClaimedJob | None = None) -> Batch | None:
        """Take up to BATCH due deliveries of the endpoint for job ``job_id``; None when there is nothing to send
        (the endpoint is gone or disabled: its waiting deliveries are then failed) or when ``lease``, the running
        attempt, no longer holds its lease (another run of the job has them now: sending beside it would send
        its deliveries twice)."""
        now, stamp = time.time(), utcnow()
        with self.db.session() as session:
            if lease is not None and not lease_held(session, lease, now):
                log.warning("job %s attempt %d: its lease expired while it ran; it stops (the job runs again)",
                            lease.id, lease.attempt)
                return None
            if self.sqlite:  # the write lock first (a no-op UPDATE): concurrent claims take turns, none reads stale ids
                session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                                .values(id=WebhookEndpoint.id).execution_options(synchronize_session=False))
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None:
                return None
            if not endpoint.enabled:
                session.execute(update(WebhookDelivery).where(self._mine(endpoint_id, job_id, float("inf"))).values(
                    status=DeliveryStatus.FAILED, claim_job_id=None, updated_at=stamp)
                    .execution_options(synchronize_session=False))
                return None
            # the ids first, then the UPDATE of exactly those: a LIMIT inside the UPDATE's subquery is no limit on
            # PostgreSQL (the planner may run it again per row, SKIP LOCKED finding new rows each time)
            due = list(session.execute(select(WebhookDelivery.id).where(self._mine(endpoint_id, job_id, now))
                                       .order_by(WebhookDelivery.id).limit(BATCH)
                                       .with_for_update(skip_locked=True)).scalars())
            if not due:
                return Batch(endpoint_id, endpoint.user_id, endpoint.url, Signer(endpoint.signing, []), [])
            rows = session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(due), self._mine(endpoint_id, job_id, now))
                .values(status=DeliveryStatus.SENDING, claim_job_id=job_id, updated_at=stamp)
                .returning(WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.event_id)
                .execution_options(synchronize_session=False)).all()
            if not rows:
                return Batch(endpoint_id, endpoint.user_id, endpoint.url, Signer(endpoint.signing, []), [])
            events = {e.id: e for e in session.execute(
                select(Event.id, Event.public_id, Event.type, Event.data, Event.created_at)
                .where(Event.id.in_({r.event_id for r in rows})))}
            try:
                doc = self.vault.open_webhook_secrets(endpoint)
            except (DecryptionError, KeyringError):
                log.error("webhook endpoint %s: its signing secret cannot be decrypted", endpoint.public_id)
                raise JobFailed("the endpoint's signing secret cannot be decrypted") from None
            in_force = [doc["current"]]
            if doc.get("previous") and (endpoint.previous_expires_at or 0) > now:
                in_force.append(doc["previous"])
            signer = Signer(endpoint.signing, in_force)
            items = [Item(r.id, r.attempts, events[r.event_id].public_id,
                          body_of(events[r.event_id].type, events[r.event_id].created_at,
                                  dict(events[r.event_id].data or {})))
                     for r in sorted(rows, key=lambda r: r.id)]
            return Batch(endpoint_id, endpoint.user_id, endpoint.url, signer, items)

    def _next(self, outcome: Outcome) -> tuple[DeliveryStatus, float]:
        """Return a non-delivered outcome's next state and when its next attempt is due (epoch seconds)."""
        attempt = outcome.item.attempts + 1
        if outcome.status_code == 410 or attempt > len(self.delays):
            return DeliveryStatus.FAILED, time.time()
        delay = self.delays[attempt - 1] * random.uniform(0.9, 1.1)
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        return DeliveryStatus.PENDING, time.time() + delay

    def record(self, batch: Batch, outcomes: list[Outcome], job_id: int) -> None:
        """Write ``outcomes`` in one transaction: attempts, deliveries (only those still held by ``job_id``) and
        the endpoint's state."""
        stamp = utcnow()
        counted: list[str] = []
        with self.db.session() as session:
            held: list[Outcome] = []
            mine = and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.claim_job_id == job_id)
            delivered: dict[int | None, list[Outcome]] = {}
            for outcome in outcomes:
                if outcome.delivered:
                    delivered.setdefault(outcome.status_code, []).append(outcome)
                    counted.append("delivered")
                    continue
                status, due = self._next(outcome)
                counted.append("gone" if outcome.status_code == 410 else
                               "failed" if status == DeliveryStatus.FAILED else "retry")
                done = rowcount(session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id == outcome.item.id, mine)
                    .values(attempts=outcome.item.attempts + 1, claim_job_id=None, status=status, next_attempt_at=due,
                            last_status_code=outcome.status_code, updated_at=stamp)
                    .execution_options(synchronize_session=False)))
                if done:
                    held.append(outcome)
            for code, group in delivered.items():  # one statement per status code: the common case is one for all
                by_id = {o.item.id: o for o in group}
                ids = session.execute(
                    update(WebhookDelivery).where(WebhookDelivery.id.in_(by_id), mine)
                    .values(attempts=WebhookDelivery.attempts + 1, claim_job_id=None, status=DeliveryStatus.DELIVERED,
                            delivered_at=stamp, last_status_code=code, updated_at=stamp)
                    .returning(WebhookDelivery.id).execution_options(synchronize_session=False)).scalars()
                held.extend(by_id[i] for i in ids)
            if held:
                session.execute(WebhookAttempt.__table__.insert(), [
                    {"delivery_id": o.item.id, "attempt": o.item.attempts + 1, "at": o.at,
                     "status_code": o.status_code, "latency_ms": round(o.latency_ms, 3), "error_kind": o.error_kind,
                     "response_excerpt": o.excerpt} for o in held])
            self._endpoint_state(session, batch, held, stamp)
        if self.count is not None:
            for outcome_name in counted:
                self.count(outcome_name)

    def _endpoint_state(self, session: Session, batch: Batch, held: list[Outcome], stamp: datetime) -> None:
        """Keep the endpoint's ``failing_since``; disable it after a 410 or after failing for too long."""
        if not held:
            return
        endpoint = WebhookEndpoint
        if any(o.status_code == 410 for o in held):
            self._disable(session, batch, "the receiver answered 410 Gone", endpoint.enabled.is_(True))
            return
        if any(o.delivered for o in held):
            session.execute(update(endpoint).where(endpoint.id == batch.endpoint_id, endpoint.failing_since.is_not(None))
                            .values(failing_since=None).execution_options(synchronize_session=False))
            return
        session.execute(update(endpoint).where(endpoint.id == batch.endpoint_id, endpoint.failing_since.is_(None))
                        .values(failing_since=stamp).execution_options(synchronize_session=False))
        cutoff = stamp - timedelta(days=self.settings.webhook_disable_after_days)
        days = self.settings.webhook_disable_after_days
        self._disable(session, batch, f"every delivery failed for {days:g} days",
                      and_(endpoint.enabled.is_(True), endpoint.failing_since <= cutoff))

    def _disable(self, session: Session, batch: Batch, reason: str, condition: Any) -> None:
        done = rowcount(session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == batch.endpoint_id, condition)
            .values(enabled=False, disabled_reason=reason, updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if done:
            public_id = session.execute(select(WebhookEndpoint.public_id)
                                        .where(WebhookEndpoint.id == batch.endpoint_id)).scalar_one()
            log.warning("webhook endpoint %s disabled: %s", public_id, reason)
            record(session, EventType.WEBHOOK_DISABLED, user_id=batch.user_id,
                   data={"endpoint_id": public_id, "reason": reason})

    def plan(self, endpoint_id: int) -> None:
        """Make sure the endpoint's waiting deliveries have a job: now if some are due, else at the earliest retry."""
        now = time.time()
        with self.db.session() as session:
            earliest = session.execute(select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING)).scalar()
            if earliest is None:
                return
            if earliest <= now:
                ensure_drain(session, endpoint_id)
            else:
                schedule_retry(session, endpoint_id, float(earliest))

    # --- the sweep --------------------------------------------------------------------------------

    def sweep(self, job: ClaimedJob) -> None:
        """The ``webhooks.sweep`` handler (scheduled, every minute): delete deliveries finished more than KEEP_DAYS
        ago, give deliveries held by a job that no longer runs back to the queue, and make sure every endpoint
        with waiting deliveries has a job (a safety net: normally each already has one)."""
        stamp = utcnow()
        with self.db.session() as session:
            session.execute(delete(WebhookDelivery).where(
                WebhookDelivery.status.in_([DeliveryStatus.DELIVERED, DeliveryStatus.FAILED]),
                WebhookDelivery.updated_at < stamp - timedelta(days=KEEP_DAYS))
                .execution_options(synchronize_session=False))  # their attempts go with them (ON DELETE CASCADE)
            alive = select(Job.id).where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            session.execute(update(WebhookDelivery).where(
                WebhookDelivery.status == DeliveryStatus.SENDING,
                or_(WebhookDelivery.claim_job_id.is_(None), WebhookDelivery.claim_job_id.not_in(alive)))
                .values(status=DeliveryStatus.PENDING, claim_job_id=None, updated_at=stamp)
                .execution_options(synchronize_session=False))
            waiting = list(session.execute(select(WebhookDelivery.endpoint_id).where(
                WebhookDelivery.status == DeliveryStatus.PENDING).distinct()).scalars())
        for endpoint_id in waiting:
            self.plan(endpoint_id)
