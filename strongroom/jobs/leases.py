"""Leases in the database: one process of a deployment runs a leased job per interval.

A lease is a row ``job_leases(name, holder, expires_at)``. :meth:`LeaseStore.acquire` takes it
with one conditional UPDATE (the row's lease has expired) or, for a job never leased, one INSERT
(the primary key refuses a second): exactly one of any number of concurrent callers wins, on
SQLite and PostgreSQL alike, with no row lock. The winner holds it until ``expires_at``; a job
leased for its interval therefore runs once per interval in the whole deployment, whichever
process's timer fires first.
"""

from __future__ import annotations

import os
import socket
import time

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from strongroom.db import Database, rowcount
from strongroom.models import JobLease


def process_holder() -> str:
    """Return a name for this process that is unique in the deployment: host, pid and a random part."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{os.urandom(4).hex()}"


class LeaseStore:
    """Takes and gives back leases on named jobs for one holder (a process)."""

    def __init__(self, db: Database, holder: str | None = None) -> None:
        self.db = db
        self.holder = holder or process_holder()

    def acquire(self, name: str, seconds: float, now: float | None = None) -> bool:
        """Take the lease on ``name`` for ``seconds`` if nobody holds it now; return whether we did."""
        now = time.time() if now is None else now
        with self.db.session() as session:
            taken = rowcount(session.execute(
                update(JobLease).where(JobLease.name == name, JobLease.expires_at <= now)
                .values(holder=self.holder, expires_at=now + seconds)
                .execution_options(synchronize_session=False)))
        if taken == 1:
            return True
        try:
            with self.db.session() as session:
                session.execute(insert(JobLease).values(name=name, holder=self.holder, expires_at=now + seconds))
        except IntegrityError:  # the row exists: somebody holds the lease (or just took it)
            return False
        return True

    def holder_of(self, name: str) -> str | None:
        """Return who holds (or last held) the lease on ``name``."""
        with self.db.session() as session:
            row = session.get(JobLease, name)
            return row.holder if row is not None else None
