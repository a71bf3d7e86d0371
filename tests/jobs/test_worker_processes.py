"""``strongroom worker`` processes on one database (SQLite and PostgreSQL): a worker killed with ``kill -9``
in the middle of a job loses nothing (the job runs again after its lease and its effect happens once), and
two workers share N jobs so that each runs exactly once. Handlers: tests/jobs/job_handlers.py, loaded by
the workers through STRONGROOM_JOB_HANDLERS; every count is read from the tables they write."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from support import BIN, PG_URL, ROOT, drop_pg_schema, new_pg_schema, postgres_available
from support.cli import clean_env, strongroom

from strongroom.db import Database
from strongroom.enums import JobStatus
from strongroom.jobs import JobQueue, enqueue

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["sqlite", "postgresql"])
def install(request, tmp_path) -> Iterator[dict[str, str]]:
    """The environment of a migrated installation, with the test handlers and a short lease."""
    env = {"STRONGROOM_DATA_DIR": str(tmp_path / "data"), "STRONGROOM_JOB_HANDLERS": "job_handlers:register",
           "STRONGROOM_JOBS_LEASE_SECONDS": "3", "STRONGROOM_JOBS_POLL_SECONDS": "0.2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    schema = None
    if request.param == "postgresql":
        problem = postgres_available()
        if problem:
            pytest.skip(f"POSTGRESQL PASS NOT RUN: {PG_URL} does not answer ({problem})")
        schema, env["STRONGROOM_DATABASE_URL"] = new_pg_schema()
    try:
        strongroom("db", "upgrade", env=env).ok()
        yield env
    finally:
        if schema:
            drop_pg_schema(schema)


def database(env: dict[str, str]) -> Database:
    return Database(env.get("STRONGROOM_DATABASE_URL") or f"sqlite:///{env['STRONGROOM_DATA_DIR']}/strongroom.db")


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "strongroom"), "worker", *args], env=clean_env(env), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def scalar(db: Database, sql: str) -> int:
    try:
        with db.session() as session:
            return int(session.execute(text(sql)).scalar_one())
    except SQLAlchemyError:  # the table does not exist yet (no worker registered)
        return 0


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


def test_a_worker_killed_mid_job_loses_nothing(install):
    db = database(install)
    with db.session() as session:
        job_id = enqueue(session, "test.effect", {"first_sleep": 120})
    first = start_worker(install)
    second = None
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_runs") == 1, 60, "the first attempt to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held = JobQueue(db).get(job_id)
        assert held.status == JobStatus.RUNNING and held.lease_expires_at is not None  # a dead worker's lease
        second = start_worker(install)
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
                err = stop(proc)
                assert "Traceback" not in err, err
        db.dispose()


def test_two_workers_run_each_of_many_jobs_exactly_once(install):
    db = database(install)
    workers = [start_worker(install, "--concurrency", "4") for _ in range(2)]
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_workers") == 2, 60, "both workers to start")
        with db.session() as session:
            ids = [enqueue(session, "test.effect", {"sleep": 0.01}) for _ in range(150)]
        wait_for(lambda: scalar(db, "SELECT count(*) FROM test_job_effects") == len(ids), 120, "every job")
        # (of its kind: the built-in schedules, e.g. the webhooks sweep, add succeeded jobs of their own)
        wait_for(lambda: len(JobQueue(db).list(status=JobStatus.SUCCEEDED, kind="test.effect", limit=1000)) == len(ids),
                 30, "every job recorded")
        assert scalar(db, "SELECT count(*) FROM test_job_runs") == len(ids)  # no job ran twice
        assert scalar(db, "SELECT count(DISTINCT job_id) FROM test_job_runs") == len(ids)
        assert scalar(db, "SELECT count(DISTINCT pid) FROM test_job_runs") == 2  # both took a share
    finally:
        for proc in workers:
            err = stop(proc)
            assert "Traceback" not in err, err
        db.dispose()


def test_a_worker_refuses_handlers_that_do_not_load(install):
    run = strongroom("worker", env={**install, "STRONGROOM_JOB_HANDLERS": "job_handlers:nothing_here"})
    assert run.returncode == 2
    assert run.error == "STRONGROOM_JOB_HANDLERS must name module:function registration functions (cannot load " \
                        "job_handlers:nothing_here)"
