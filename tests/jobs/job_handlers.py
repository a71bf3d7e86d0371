"""Job handlers of the process tests: ``STRONGROOM_JOB_HANDLERS=job_handlers:register`` (with tests/jobs on
PYTHONPATH). Each writes what it did to tables of its own, so the test counts through the database:

* ``test_job_workers``: one row per worker process that registered (its pid);
* ``test_job_runs``: one row per attempt started (job id, attempt, pid, epoch seconds);
* ``test_job_effects``: the job's effect, written idempotently (one row per job, whatever the attempts).

Kind ``test.effect``: record the attempt, sleep ``payload["sleep"]`` seconds (the first attempt sleeps
``payload["first_sleep"]`` instead, long enough to be killed in), then write the effect.
"""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

TABLES = ["CREATE TABLE IF NOT EXISTS test_job_workers (pid INTEGER PRIMARY KEY)",
          ("CREATE TABLE IF NOT EXISTS test_job_runs (job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, "
           "pid INTEGER NOT NULL, started FLOAT NOT NULL)"),
          "CREATE TABLE IF NOT EXISTS test_job_effects (job_id INTEGER PRIMARY KEY)"]


def ensure_tables(db: Any) -> None:
    with db.session() as session:
        for statement in TABLES:
            session.execute(text(statement))


def register(registry: Any) -> None:
    db = registry.services.db
    for attempt in range(5):  # two workers starting at once: PostgreSQL's CREATE TABLE IF NOT EXISTS can race
        try:  # (a unique violation on pg_type for the loser); the table is there on the next try
            ensure_tables(db)
            break
        except SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.2)

    def effect(job: Any) -> None:
        with db.session() as session:
            session.execute(text("INSERT INTO test_job_runs (job_id, attempt, pid, started) VALUES (:j, :a, :p, :t)"),
                            {"j": job.id, "a": job.attempt, "p": os.getpid(), "t": time.time()})
        pause = job.payload.get("first_sleep", 0) if job.attempt == 1 else 0
        time.sleep(pause or job.payload.get("sleep", 0))
        with db.session() as session:
            session.execute(text("INSERT INTO test_job_effects (job_id) VALUES (:j) ON CONFLICT DO NOTHING"),
                            {"j": job.id})

    registry.handler("test.effect", effect)
    with db.session() as session:
        session.execute(text("INSERT INTO test_job_workers (pid) VALUES (:p) ON CONFLICT DO NOTHING"),
                        {"p": os.getpid()})
