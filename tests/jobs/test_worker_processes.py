"""``strongroom worker`` processes on one database (SQLite and PostgreSQL): a worker killed with ``kill -9``
in the middle of a job loses nothing (the job runs again after its lease and its effect happens once), and
two workers share N jobs so that each runs exactly once. Handlers: tests/jobs/job_handlers.py, loaded by
the workers through STRONGROOM_JOB_HANDLERS; every count is read from the tables they write."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from support import ROOT
from support.cli import strongroom
from support.workers import Worker, installation, wait_for

from strongroom.db import Database
from strongroom.enums import JobStatus
from strongroom.jobs import JobQueue, enqueue

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["sqlite", "postgresql"])
def install(request, tmp_path) -> Iterator[dict[str, str]]:
    """The environment of a migrated installation, with the test handlers and a short lease."""
    yield from installation(request.param, tmp_path, {
        "STRONGROOM_JOB_HANDLERS": "job_handlers:register", "STRONGROOM_JOBS_LEASE_SECONDS": "3",
        "STRONGROOM_JOBS_POLL_SECONDS": "0.2", "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])})


def database(env: dict[str, str]) -> Database:
    return Database(env.get("STRONGROOM_DATABASE_URL") or f"sqlite:///{env['STRONGROOM_DATA_DIR']}/strongroom.db")


def scalar(db: Database, sql: str) -> int:
    try:
        with db.session() as session:
            return int(session.execute(text(sql)).scalar_one())
    except SQLAlchemyError:  # the table does not exist yet (no worker registered)
        return 0


def test_a_worker_killed_mid_job_loses_nothing(install):
    db = database(install)
    with db.session() as session:
        job_id = enqueue(session, "test.effect", {"first_sleep": 120})
    first = Worker(install)
    second = None
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_runs") == 1, 60, "the first attempt to start")
        first.kill()
        held = JobQueue(db).get(job_id)
        assert held.status == JobStatus.RUNNING and held.lease_expires_at is not None  # a dead worker's lease
        second = Worker(install)
        wait_for(lambda: JobQueue(db).get(job_id).status == JobStatus.SUCCEEDED, 60, "the job to run again")
        with db.session() as session:
            again = session.execute(text("SELECT started FROM test_job_runs WHERE attempt = 2")).scalar_one()
        assert again >= held.lease_expires_at  # not before the dead worker's lease expired
        job = JobQueue(db).get(job_id)
        assert (job.attempts, job.last_error) == (2, None)
        assert scalar(db, "SELECT count(*) FROM test_job_runs") == 2  # started twice...
        assert scalar(db, "SELECT count(*) FROM test_job_effects") == 1  # ...its effect once
    finally:
        for proc in (first, second):
            if proc is not None:
                err = proc.stop()
                assert "Traceback" not in err, err
        db.dispose()


def test_two_workers_run_each_of_many_jobs_exactly_once(install):
    db = database(install)
    # a lease no busy machine outlasts: a worker stalled past a 3 s lease would (rightly) see its job run again
    env = {**install, "STRONGROOM_JOBS_LEASE_SECONDS": "30"}
    workers = [Worker(env, "--concurrency", "4") for _ in range(2)]
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_workers") == 2, 60, "both workers to start")
        with db.session() as session:
            ids = [enqueue(session, "test.effect", {"sleep": 0.01}) for _ in range(150)]
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_effects") == len(ids), 120, "every job")
        # (counted by kind: the built-in scheduled jobs, strongroom.jobs.builtin, run beside them)
        wait_for(lambda: scalar(db, "SELECT count(*) FROM jobs WHERE kind = 'test.effect' AND status = 'succeeded'")
                 == len(ids), 30, "every job recorded")
        assert scalar(db, "SELECT count(*) FROM test_job_runs") == len(ids)  # no job ran twice
        assert scalar(db, "SELECT count(DISTINCT job_id) FROM test_job_runs") == len(ids)
        assert scalar(db, "SELECT count(DISTINCT pid) FROM test_job_runs") == 2  # both took a share
    finally:
        for proc in workers:
            err = proc.stop()
            assert "Traceback" not in err, err
            assert proc.proc.returncode == 0, err  # a worker that could not start says why
        db.dispose()


def test_a_worker_refuses_handlers_that_do_not_load(install):
    run = strongroom("worker", env={**install, "STRONGROOM_JOB_HANDLERS": "job_handlers:nothing_here"})
    assert run.returncode == 2
    assert run.error == "STRONGROOM_JOB_HANDLERS must name module:function registration functions (cannot load " \
                        "job_handlers:nothing_here)"
