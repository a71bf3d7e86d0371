"""Durable jobs in the project's own database: rows of ``jobs`` and ``schedules`` (migration 0009).

* :func:`enqueue` adds a job in the CALLER's session: the job exists if and only if the caller's
  transaction commits (the change that causes a job and the job are one transaction). On
  PostgreSQL it also sends ``NOTIFY strongroom_jobs``, which PostgreSQL delivers at commit only.
* :meth:`JobQueue.claim` takes due jobs for one worker under a lease: on PostgreSQL with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent workers pass over each other's rows), on SQLite
  in a ``BEGIN IMMEDIATE`` transaction (one writer at a time: the claim is the only one). A job
  is due when it is queued and its ``run_at`` has come, or running under a lease that expired (its
  worker died: it runs again). Each claim counts an attempt.
* :meth:`JobQueue.succeed` / :meth:`JobQueue.fail` are conditional on the claim (same owner, same
  attempt, still running): a worker whose lease expired and was taken over writes nothing.
* A failed attempt goes back to the queue after :func:`backoff` (exponential, with jitter), or to
  ``dead`` after its last attempt (a dead letter: ``strongroom jobs retry`` queues it again).
* :meth:`JobQueue.fire_schedules` takes each due firing of a schedule with one conditional UPDATE
  of its ``next_run_at`` and enqueues its job in the same transaction: each firing once, whatever
  number of schedulers run.

Handlers are called at least once per job and must be idempotent. ``last_error`` holds an error's
type, or the reason of a :class:`JobFailed`, which its handler declares safe to store: never a
message of a library (those may carry secrets).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strongroom.db import Database, rowcount, utcnow
from strongroom.enums import JobStatus
from strongroom.errors import Conflict, Forbidden, NotFound, ValidationFailed
from strongroom.jobs.leases import process_holder
from strongroom.models import Job, Schedule
from strongroom.pagination import Page, paginate
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.audit import AuditService

CHANNEL = "strongroom_jobs"  # PostgreSQL LISTEN/NOTIFY channel: a wake-up, never data
DEFAULT_MAX_ATTEMPTS = 5
MAX_KIND = 100
ERROR_LENGTH = 200
FINISHED = (JobStatus.SUCCEEDED, JobStatus.CANCELED)


class JobFailed(Exception):
    """Raised by a handler: the attempt failed for ``reason``, which the handler declares safe to store
    and show (no secret, no library message). ``permanent``: no retry, the job is dead now."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        self.reason = reason[:ERROR_LENGTH]
        self.permanent = permanent
        super().__init__(self.reason)


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Return the delay before the retry that follows failed attempt ``attempt`` (1, 2, ...).

    Exponential with "equal jitter": the step ``min(cap, base * 2**(attempt-1))``, half of it fixed and
    half random, so retries both spread out (no thundering herd) and keep growing.
    """
    step = min(cap, base * math.pow(2, max(0, attempt - 1)))
    return step / 2 + (rng or random).uniform(0, step / 2)


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker holds: what its handler receives. ``attempt`` counts from 1."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    owner: str = field(repr=False)


@dataclass(frozen=True)
class JobView:
    """A job as the operator sees it (``strongroom jobs list``)."""

    id: int
    kind: str
    status: JobStatus
    attempts: int
    max_attempts: int
    run_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueueStats:
    """The queue at one moment: jobs by status, due jobs (waiting for a worker) and the age of the oldest."""

    by_status: dict[str, int]
    due: int
    oldest_due_seconds: float  # 0 when nothing is due


@dataclass(frozen=True)
class ScheduleSpec:
    """A recurring job: every ``interval`` seconds one job of ``kind`` with ``payload``."""

    name: str
    kind: str
    interval: float
    payload: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def _check(kind: str, payload: dict[str, Any], max_attempts: int) -> None:
    if not kind or len(kind) > MAX_KIND:
        raise ValidationFailed("a job kind is 1 to 100 characters", fields={"kind": "1 to 100 characters"})
    if not 1 <= max_attempts <= 100:
        raise ValidationFailed("max_attempts is 1 to 100", fields={"max_attempts": "1 to 100"})
    try:
        json.dumps(payload)
    except (TypeError, ValueError):
        raise ValidationFailed("a job payload is a JSON object", fields={"payload": "JSON"}) from None


# built once (a Core insert on the table: no ORM bulk path, no statement built per job)
_INSERT_JOB = insert(Job.__table__).returning(Job.__table__.c.id)


def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *, delay: float = 0.0,
            run_at: float | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> int:
    """Add a job of ``kind`` in ``session``'s transaction (it exists once that commits); return its id.

    Due at ``run_at`` (epoch seconds), else ``delay`` seconds from now. The payload is stored as it
    is: never put a secret in it. Raises ValidationFailed for a bad kind, payload or max_attempts.
    """
    payload = dict(payload or {})
    _check(kind, payload, max_attempts)
    now = utcnow()
    job_id = session.execute(_INSERT_JOB, {
        "kind": kind, "payload": payload, "status": JobStatus.QUEUED, "attempts": 0, "max_attempts": max_attempts,
        "run_at": run_at if run_at is not None else time.time() + delay, "created_at": now, "updated_at": now,
    }).scalar_one()
    if session.get_bind().dialect.name == "postgresql":  # delivered at commit, dropped on rollback
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return int(job_id)


def lease_held(session: Session, job: ClaimedJob, now: float | None = None) -> bool:
    """Return True if ``job``'s attempt still holds its lease: running, under this owner and attempt, not expired.

    A handler that works in steps (a batch at a time) checks it in each step's transaction: a run that lost its
    lease (stalled past it, so another runner took the job and runs it again) then stops instead of working
    beside the new run.
    """
    now = time.time() if now is None else now
    return session.execute(select(Job.id).where(_attempt(job), Job.lease_expires_at > now)).first() is not None


def _attempt(job: ClaimedJob) -> Any:
    """The condition that ``job``'s row is still this attempt's: running, under its owner, not claimed again."""
    return and_(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.lease_owner == job.owner,
                Job.attempts == job.attempt)


def _due(now: float) -> Any:
    return or_(and_(Job.status == JobStatus.QUEUED, Job.run_at <= now),
               and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at <= now))


def _view(row: Job) -> JobView:
    return JobView(row.id, row.kind, row.status, row.attempts, row.max_attempts, row.run_at, row.lease_owner,
                   row.lease_expires_at, row.last_error, row.created_at, row.updated_at)


class JobQueue:
    """The jobs and schedules of one database, as seen by one holder (a worker process)."""

    def __init__(self, db: Database, holder: str | None = None, audit: AuditService | None = None) -> None:
        self.db = db
        self.holder = holder or process_holder()
        self.audit = audit  # retry and cancel are audited through it (in the transaction of the change)
        self._known_schedules: set[str] = set()  # schedules whose row exists
        self.sqlite = db.engine.dialect.name == "sqlite"

    @contextmanager
    def _claiming(self) -> Iterator[Connection]:
        """One write transaction that claims: ``BEGIN IMMEDIATE`` on SQLite (the write lock first, so no
        other writer slips between the read and the write), a plain one on PostgreSQL (row locks)."""
        with self.db.engine.connect() as conn:
            if self.sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()

    # --- workers -------------------------------------------------------------------------------

    def claim(self, kinds: Iterable[str], limit: int, lease_seconds: float,
              now: float | None = None) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs of ``kinds`` for ``lease_seconds``, oldest first; count an attempt each.

        A job whose lease expired on its last attempt (its worker died every time) is dead instead.
        """
        kinds = list(kinds)
        if not kinds or limit < 1:
            return []
        with self._claiming() as conn:
            # the clock read once the lock is held: a claim that waited for SQLite's write lock still leases
            # for lease_seconds from when it took the jobs, not from when it began waiting
            now = time.time() if now is None else now
            stamp = utcnow()
            conn.execute(update(Job).where(
                Job.status == JobStatus.RUNNING, Job.lease_expires_at <= now, Job.attempts >= Job.max_attempts,
                Job.kind.in_(kinds)).values(status=JobStatus.DEAD, lease_owner=None, lease_expires_at=None,
                                            last_error="lease expired on the last attempt", updated_at=stamp))
            ids = list(conn.execute(
                select(Job.id).where(_due(now), Job.kind.in_(kinds)).order_by(Job.run_at, Job.id).limit(limit)
                .with_for_update(skip_locked=True)).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(Job).where(Job.id.in_(ids), _due(now))
                .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, lease_owner=self.holder,
                        lease_expires_at=now + lease_seconds, updated_at=stamp)
                .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)).all()
        return sorted((ClaimedJob(r.id, r.kind, dict(r.payload or {}), r.attempts, r.max_attempts, self.holder)
                       for r in rows), key=lambda j: j.id)

    def extend(self, job: ClaimedJob, lease_seconds: float) -> bool:
        """Extend ``job``'s lease to ``lease_seconds`` from now; False if it is no longer ours."""
        with self.db.session() as session:
            return rowcount(session.execute(update(Job).where(_attempt(job))
                                            .values(lease_expires_at=time.time() + lease_seconds)
                                            .execution_options(synchronize_session=False))) == 1

    def succeed(self, job: ClaimedJob) -> bool:
        """Mark ``job`` succeeded; False if it is no longer ours (lease lost, canceled): nothing written."""
        with self.db.session() as session:
            return rowcount(session.execute(update(Job).where(_attempt(job)).values(
                status=JobStatus.SUCCEEDED, lease_owner=None, lease_expires_at=None, last_error=None,
                updated_at=utcnow()).execution_options(synchronize_session=False))) == 1

    def fail(self, job: ClaimedJob, error: str, delay: float, *, permanent: bool = False) -> JobStatus | None:
        """Record a failed attempt: queued again in ``delay`` seconds, or dead after the last attempt (or at
        once if ``permanent``). Returns the new status, None if the job is no longer ours."""
        dead = permanent or job.attempt >= job.max_attempts
        status = JobStatus.DEAD if dead else JobStatus.QUEUED
        with self.db.session() as session:
            done = rowcount(session.execute(update(Job).where(_attempt(job)).values(
                status=status, run_at=time.time() + (0 if dead else delay), lease_owner=None, lease_expires_at=None,
                last_error=error[:ERROR_LENGTH], updated_at=utcnow()).execution_options(synchronize_session=False)))
        return status if done == 1 else None

    # --- schedules -----------------------------------------------------------------------------

    def fire_schedules(self, specs: Sequence[ScheduleSpec], now: float | None = None) -> list[str]:
        """Enqueue one job for each schedule of ``specs`` that is due; return the names fired here.

        A schedule seen for the first time is due at once. Each firing is taken by one conditional UPDATE
        (``next_run_at`` still what we read): of concurrent schedulers exactly one fires it. Missed
        firings (every scheduler down) are not caught up: one job, then the next interval from now.
        """
        now = time.time() if now is None else now
        fired = []
        for spec in specs:
            if spec.name not in self._known_schedules:  # the row is made once, not tried on every poll
                try:
                    with self.db.session() as session:
                        if session.get(Schedule, spec.name) is None:
                            session.execute(insert(Schedule).values(name=spec.name, kind=spec.kind,
                                                                    interval_seconds=spec.interval, next_run_at=now))
                except IntegrityError:
                    pass  # somebody made it first
                self._known_schedules.add(spec.name)
            with self.db.session() as session:
                row = session.get(Schedule, spec.name)
                if row is None or row.next_run_at > now:
                    continue
                seen = row.next_run_at
                steps = math.floor((now - seen) / spec.interval) + 1
                taken = rowcount(session.execute(
                    update(Schedule).where(Schedule.name == spec.name, Schedule.next_run_at == seen)
                    .values(next_run_at=seen + steps * spec.interval, interval_seconds=spec.interval,
                            kind=spec.kind, last_fired_at=now, last_fired_by=self.holder)
                    .execution_options(synchronize_session=False)))
                if taken == 1:
                    enqueue(session, spec.kind, spec.payload, run_at=now, max_attempts=spec.max_attempts)
                    fired.append(spec.name)
        return fired

    # --- operators -----------------------------------------------------------------------------

    def list(self, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 50) -> list[JobView]:
        """Return jobs, newest first, optionally of one status and kind."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if status is not None:
            query = query.where(Job.status == status)
        if kind is not None:
            query = query.where(Job.kind == kind)
        with self.db.session() as session:
            return [_view(row) for row in session.scalars(query)]

    def page(self, *, status: JobStatus | None = None, kind: str | None = None, cursor: str | None = None,
             limit: int = 50) -> Page[JobView]:
        """Return a page of jobs, newest first, optionally of one status and kind (keyset pages by id).
        Raises ValidationFailed for a cursor that is not one of ours or a limit outside 1..200."""
        query = select(Job)
        if status is not None:
            query = query.where(Job.status == status)
        if kind is not None:
            query = query.where(Job.kind == kind)
        with self.db.session() as session:
            rows = paginate(session, query, Job.id, cursor, limit, descending=True)
            return Page([_view(row) for row in rows.items], rows.next_cursor)

    def get(self, job_id: int) -> JobView:
        """Return job ``job_id``. Raises NotFound."""
        with self.db.session() as session:
            row = session.get(Job, job_id)
            if row is None:
                raise NotFound(f"no job {job_id}")
            return _view(row)

    @staticmethod
    def _admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only admins manage jobs")

    def _audit(self, session: Session, action: str, principal: Principal, job_id: int) -> None:
        if self.audit is not None:
            self.audit.record(session, action, "ok", principal=principal, target=f"job:{job_id}")

    def retry(self, principal: Principal, job_id: int) -> JobView:
        """Queue a dead or canceled job again, due now, with its attempts from zero, audited ``job.retry`` in
        the same transaction. Raises Forbidden (not an admin), NotFound, or Conflict for a job in any other
        state (queued and running ones are already on their way)."""
        self._admin(principal)
        with self.db.session() as session:
            done = rowcount(session.execute(update(Job).where(
                Job.id == job_id, Job.status.in_([JobStatus.DEAD, JobStatus.CANCELED])).values(
                status=JobStatus.QUEUED, attempts=0, run_at=time.time(), lease_owner=None, lease_expires_at=None,
                updated_at=utcnow()).execution_options(synchronize_session=False)))
            if done == 1:
                self._audit(session, "job.retry", principal, job_id)
                if session.get_bind().dialect.name == "postgresql":
                    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        if done != 1:
            job = self.get(job_id)
            raise Conflict(f"job {job_id} is {job.status}: only a dead or canceled job is retried")
        return self.get(job_id)

    def cancel(self, principal: Principal, job_id: int) -> JobView:
        """Cancel a queued or running job (a running attempt finishes, but its outcome is not recorded and
        it is not retried), audited ``job.cancel`` in the same transaction. Raises Forbidden (not an admin),
        NotFound, or Conflict for a job already finished."""
        self._admin(principal)
        with self.db.session() as session:
            done = rowcount(session.execute(update(Job).where(
                Job.id == job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])).values(
                status=JobStatus.CANCELED, lease_owner=None, lease_expires_at=None, updated_at=utcnow())
                .execution_options(synchronize_session=False)))
            if done == 1:
                self._audit(session, "job.cancel", principal, job_id)
        if done != 1:
            job = self.get(job_id)
            raise Conflict(f"job {job_id} is {job.status}: only a queued or running job is canceled")
        return self.get(job_id)

    def stats(self, now: float | None = None) -> QueueStats:
        """Return the jobs by status, how many are due and how long the oldest has waited."""
        now = time.time() if now is None else now
        due = _due(now)
        # one statement (the due ones counted per status beside all of them), so one snapshot: in two, a job
        # enqueued or claimed in between could count more jobs due than the statuses held
        with self.db.session() as session:
            rows = session.execute(select(
                Job.status, func.count(), func.count(case((due, 1))),
                func.min(case((due, func.coalesce(Job.lease_expires_at, Job.run_at))))).group_by(Job.status)).all()
        by_status = {str(s): int(n) for s, n, _, _ in rows}
        due_count = sum(int(d) for _, _, d, _ in rows)
        oldest = min((float(o) for _, _, _, o in rows if o is not None), default=None)
        return QueueStats(by_status, due_count, max(0.0, now - oldest) if oldest is not None else 0.0)

    def prune(self, older_than_seconds: float) -> int:
        """Delete succeeded and canceled jobs finished more than ``older_than_seconds`` ago (dead ones stay
        until an operator retries them); return how many."""
        before = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        with self.db.session() as session:
            return rowcount(session.execute(delete(Job).where(Job.status.in_(FINISHED), Job.updated_at < before)
                                            .execution_options(synchronize_session=False)))
