"""The durable job queue and its runner, in process, on SQLite and PostgreSQL (``make_core``): enqueue
belongs to the caller's transaction, failed attempts come back after a growing jittered delay and end
dead, a lost lease writes nothing, a schedule fires once per interval whatever number of schedulers
run, PostgreSQL wakes a runner by NOTIFY, and /readyz and /metrics report the queue."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import update
from support import start_server
from support.interleave import commit_after

from strongroom.cli.context import OPERATOR
from strongroom.enums import JobStatus
from strongroom.jobs import ClaimedJob, JobFailed, JobQueue, enqueue
from strongroom.jobs.queue import ScheduleSpec, backoff
from strongroom.jobs.runner import JobsConfigError, Registry, Runner, listen_url, load_handlers
from strongroom.models import Job


def run_until(runner: Runner, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run ``runner`` on a loop of its own until ``done()`` (checked in a thread: it may read the database)."""

    async def main() -> None:
        runner.start()
        deadline = time.monotonic() + timeout
        try:
            while not await asyncio.to_thread(done):
                assert time.monotonic() < deadline, "the runner did not finish in time"
                await asyncio.sleep(0.05)
        finally:
            await runner.stop()

    asyncio.run(main())


def kind() -> str:
    return f"test.{uuid.uuid4().hex[:8]}"


def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(make_core):
    core = make_core()
    with pytest.raises(RuntimeError), core.db.session() as session:
        enqueue(session, "test.rollback", {"n": 1})
        raise RuntimeError("the change that caused the job failed")
    assert core.jobs.list() == []
    with core.db.session() as session:
        job_id = enqueue(session, "test.rollback", {"n": 2})
    [job] = core.jobs.list()
    assert (job.id, job.status, job.attempts) == (job_id, JobStatus.QUEUED, 0)


def test_failed_attempts_back_off_with_jitter_then_the_job_is_dead(make_core):
    core = make_core()
    k = kind()
    attempts: list[tuple[int, float]] = []
    outcomes: list[str] = []

    def failing(job: ClaimedJob) -> None:
        attempts.append((job.attempt, time.monotonic()))
        raise ValueError("upstream said: secret-token-123")  # a library's text: never stored

    registry = Registry()
    registry.handler(k, failing, backoff_base=0.4, backoff_cap=10)
    with core.db.session() as session:
        job_id = enqueue(session, k, max_attempts=3)
    runner = Runner(core.jobs, registry, poll_seconds=0.05, count=lambda _k, outcome: outcomes.append(outcome))
    run_until(runner, lambda: core.jobs.get(job_id).status == JobStatus.DEAD)

    assert [n for n, _ in attempts] == [1, 2, 3]
    first_gap, second_gap = attempts[1][1] - attempts[0][1], attempts[2][1] - attempts[1][1]
    # between half and all of 0.4 s (then 0.8 s), plus a poll and a busy machine's delays: well below the cap (10 s)
    assert 0.2 <= first_gap < 8.0
    assert 0.4 <= second_gap < 8.0
    job = core.jobs.get(job_id)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.DEAD, 3, "ValueError")
    assert outcomes == ["retry", "retry", "dead"]


def test_backoff_doubles_within_its_jitter_and_stops_at_the_cap():
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 30.0)]:
        delays = [backoff(attempt, 1.0, 30.0, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 4  # jittered, not one value


def test_a_permanent_failure_is_dead_at_once_with_its_declared_reason(make_core):
    core = make_core()
    k = kind()

    def refuse(job: ClaimedJob) -> None:
        raise JobFailed("receiver answered 410", permanent=True)

    registry = Registry()
    registry.handler(k, refuse)
    with core.db.session() as session:
        job_id = enqueue(session, k)
    run_until(Runner(core.jobs, registry, poll_seconds=0.05), lambda: core.jobs.get(job_id).status == JobStatus.DEAD)
    job = core.jobs.get(job_id)
    assert (job.attempts, job.last_error) == (1, "receiver answered 410")


def test_a_claim_that_waited_for_the_write_lock_leases_from_when_it_got_it(make_core):
    """On SQLite a claim waits for the write lock (BEGIN IMMEDIATE): its lease starts when it takes the jobs,
    not when it began waiting, or a wait longer than the lease would hand out a lease already expired."""
    core = make_core()
    if core.db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL claims lock rows (SKIP LOCKED) and never wait for a database-wide lock")
    k = kind()
    with core.db.session() as session:
        enqueue(session, k)
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with core.db.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            conn.rollback()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert locked.wait(10)
    threading.Timer(1.0, release.set).start()  # the claim below waits about 1 s for the lock
    begun = time.time()
    [job] = JobQueue(core.db).claim([k], 1, lease_seconds=0.5)
    holder.join(10)
    assert time.time() - begun >= 0.9  # it did wait
    assert core.jobs.get(job.id).lease_expires_at > begun + 0.9  # leased from when it got the lock


def test_a_worker_whose_lease_expired_writes_nothing_and_the_job_runs_again(make_core):
    core = make_core()
    one, two = JobQueue(core.db), JobQueue(core.db)
    k = kind()
    with core.db.session() as session:
        job_id = enqueue(session, k)
    [first] = one.claim([k], 10, lease_seconds=30)
    assert two.claim([k], 10, lease_seconds=30) == []  # held: nobody else takes it
    with core.db.session() as session:  # its worker stalls past its lease (expired in the database, no sleep)
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=time.time() - 1))
    [second] = two.claim([k], 10, lease_seconds=30)  # the lease expired: its worker is presumed dead
    assert (second.id, second.attempt) == (job_id, 2)
    assert one.succeed(first) is False and one.fail(first, "late", 1) is None  # the old holder writes nothing
    assert core.jobs.get(job_id).status == JobStatus.RUNNING
    assert two.succeed(second) is True
    assert core.jobs.get(job_id).status == JobStatus.SUCCEEDED


def test_a_job_whose_lease_expires_on_its_last_attempt_is_dead(make_core):
    core = make_core()
    k = kind()
    with core.db.session() as session:
        job_id = enqueue(session, k, max_attempts=1)
    assert len(core.jobs.claim([k], 1, lease_seconds=0.2)) == 1
    time.sleep(0.3)
    assert core.jobs.claim([k], 1, lease_seconds=30) == []
    job = core.jobs.get(job_id)
    assert (job.status, job.last_error) == (JobStatus.DEAD, "lease expired on the last attempt")


def test_concurrent_claims_never_take_one_job_twice(make_core):
    core = make_core()
    k = kind()
    with core.db.session() as session:
        ids = {enqueue(session, k) for _ in range(60)}
    queues = [JobQueue(core.db) for _ in range(4)]
    barrier = threading.Barrier(4)

    def drain(queue: JobQueue) -> list[int]:
        barrier.wait(10)
        taken: list[int] = []
        while batch := queue.claim([k], 3, lease_seconds=60):
            taken.extend(job.id for job in batch)
        return taken

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, queues))
    everything = [job_id for taken in results for job_id in taken]
    assert sorted(everything) == sorted(ids)  # each once, none lost


def test_a_schedule_fires_once_per_interval_with_two_schedulers(make_core):
    one, two = make_core(), make_core()  # two processes of one deployment
    k = kind()
    spec = ScheduleSpec(f"every-{k}", k, interval=60)
    schedulers = [JobQueue(one.db), JobQueue(two.db)]
    barrier = threading.Barrier(2)
    start = time.time()

    def tick(queue: JobQueue, now: float) -> list[str]:
        barrier.wait(10)
        return queue.fire_schedules([spec], now=now)

    with ThreadPoolExecutor(2) as pool:
        for n, now in enumerate([start, start + 1, start + 59.5, start + 60.2, start + 61, start + 185]):
            fired = list(pool.map(tick, schedulers, [now, now]))
            assert sorted(len(f) for f in fired) == ([0, 1] if n in (0, 3, 5) else [0, 0]), (n, fired)
    assert len(one.jobs.list(kind=k)) == 3  # at start, at +60, at +185 (missed firings are not caught up)


def test_postgresql_wakes_the_runner_by_notify_and_sqlite_polls(make_core):
    core = make_core()
    k = kind()
    ran = threading.Event()
    registry = Registry()
    registry.handler(k, lambda job: ran.set())
    url = listen_url(core.settings.effective_database_url)
    assert (url is not None) == (core.db.engine.dialect.name == "postgresql")
    # polling every 30 s: only a NOTIFY can start the job within seconds (SQLite: poll fast instead)
    runner = Runner(core.jobs, registry, poll_seconds=30 if url else 0.1, listen=url)

    async def main() -> float:
        runner.start()
        await asyncio.sleep(1.0)  # listening
        started = time.monotonic()
        with core.db.session() as session:
            enqueue(session, k)
        try:
            while not ran.is_set():
                assert time.monotonic() - started < 15, "the job did not start within 15 s (the poll is 30 s)"
                await asyncio.sleep(0.02)
            return time.monotonic() - started
        finally:
            await runner.stop()

    assert asyncio.run(main()) < 5


def test_handlers_load_from_module_function_names_and_a_bad_name_is_one_line():
    registry = load_handlers(" builtins:id , ", Registry())  # any callable taking the registry (here: ignores it)
    assert registry.handlers == {}
    for bad in ("no_such_module_xyz:register", "json", "json:no_such_function"):
        with pytest.raises(JobsConfigError) as caught:
            load_handlers(bad, Registry())
        assert "STRONGROOM_JOB_HANDLERS" in caught.value.message


def test_readyz_reports_a_stuck_queue_and_metrics_its_depth(fresh, tmp_path):
    srv = start_server(data_dir=tmp_path / "srv", database_url=fresh.url, jobs_stuck_seconds=5,
                       metrics_enabled=True)
    try:
        with srv.client() as client:
            assert client.get("/readyz").json() == {"status": "ok", "database": "ok", "jobs": "ok"}
            # the built-in schedules (the webhooks sweep, every minute) fire once at start: let that job finish,
            # so that the figures below are this test's jobs only
            deadline = time.monotonic() + 20
            while any(j.status != JobStatus.SUCCEEDED for j in srv.core.jobs.list(kind="webhooks.sweep")) \
                    or not srv.core.jobs.list(kind="webhooks.sweep"):
                assert time.monotonic() < deadline, "the webhooks sweep did not run at start"
                time.sleep(0.05)
            with srv.core.db.session() as session:  # a kind no runner handles, due 10 s ago
                old = enqueue(session, "test.unhandled", run_at=time.time() - 10)
                enqueue(session, "test.later", delay=3600)
            answer = client.get("/readyz")
            # reported, but the process stays ready: taking it out of rotation would unstick nothing
            assert answer.status_code == 200
            assert answer.json() == {"status": "ok", "database": "ok", "jobs": "stuck"}
            metrics = client.get("/metrics").text
            assert 'strongroom_jobs{status="queued"} 2.0' in metrics
            assert "strongroom_jobs_due 1.0" in metrics
            age = float(next(line.split()[1] for line in metrics.splitlines()
                             if line.startswith("strongroom_jobs_oldest_due_seconds ")))
            assert 10 <= age < 60
            srv.core.jobs.cancel(OPERATOR, old)
            assert client.get("/readyz").json()["jobs"] == "ok"
            assert "strongroom_jobs_due 0.0" in client.get("/metrics").text
    finally:
        srv.stop()


def test_enqueue_refuses_a_bad_kind_or_payload(make_core):
    from strongroom.errors import ValidationFailed

    core = make_core()
    bad: list[dict[str, Any]] = [{"kind": ""}, {"kind": "x" * 101}, {"kind": "k", "payload": {"a": object()}},
                                 {"kind": "k", "max_attempts": 0}]
    for args in bad:
        with pytest.raises(ValidationFailed), core.db.session() as session:
            enqueue(session, args["kind"], args.get("payload"), max_attempts=args.get("max_attempts", 5))
    assert core.jobs.list() == []


def test_retry_and_cancel_are_the_admins_and_audited_in_the_capability(make_core):
    """Every surface (CLI, console) gets the same rule: only an admin retries or cancels, audited once."""
    from support.services import new_user

    from strongroom.errors import Forbidden

    core = make_core()
    with core.db.session() as session:
        job_id = enqueue(session, "k", {})
    for act in (core.jobs.cancel, core.jobs.retry):
        with pytest.raises(Forbidden):
            act(new_user(core), job_id)
    assert core.jobs.get(job_id).status == JobStatus.QUEUED
    assert core.jobs.cancel(OPERATOR, job_id).status == JobStatus.CANCELED
    assert core.jobs.retry(OPERATOR, job_id).status == JobStatus.QUEUED
    core.audit.flush_refusals()
    actions = [e.action for e in core.audit.list(OPERATOR, limit=50).items if e.target == f"job:{job_id}"]
    assert sorted(actions) == ["job.cancel", "job.retry"]


@pytest.mark.parametrize("mode", ["inline", "off"])
def test_serve_runs_jobs_inline_unless_they_are_off(fresh, tmp_path, mode):
    srv = start_server(data_dir=tmp_path / "srv", database_url=fresh.url, jobs=mode,
                       job_handlers="job_handlers:register", jobs_poll_seconds=0.1)
    try:
        with srv.core.db.session() as session:
            job_id = enqueue(session, "test.effect")
        # inline: done within a few polls (10 s is the patience of a loaded machine); off: 20 polls of the
        # inline runner's interval is long enough to see one run it, had it started
        deadline = time.monotonic() + (10 if mode == "inline" else 2)
        while srv.core.jobs.get(job_id).status != JobStatus.SUCCEEDED and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = JobStatus.SUCCEEDED if mode == "inline" else JobStatus.QUEUED
        assert srv.core.jobs.get(job_id).status == expected
    finally:
        srv.stop()


def test_a_stop_that_lands_with_a_wake_up_still_stops(make_core):
    """A wake-up (a job finishing, a NOTIFY) in the same turn as the stop's cancel: on Python 3.11
    ``asyncio.wait_for`` then returned the wake-up and swallowed the cancel, the dispatch loop went on and a
    server's shutdown waited for it for ever (seen as ``strongroom serve`` hanging after SIGINT)."""
    core = make_core()
    registry = Registry()
    registry.handler(kind(), lambda job: None)
    runner = Runner(core.jobs, registry, poll_seconds=30)  # only a wake-up or the stop ends its wait

    async def main() -> None:
        runner.start()
        for _ in range(50):  # the dispatch loop is waiting for a wake-up: wake it and stop in one turn
            await asyncio.sleep(0.05)
        loops = list(runner._loops)
        runner.wake()
        stopping = asyncio.get_running_loop().create_task(runner.stop(grace=0.2))
        done, _ = await asyncio.wait({stopping}, timeout=10)  # (asyncio.wait cancels nothing)
        runner._stopping = True  # whatever happened, let the loop end
        assert stopping in done, "the stop is still waiting for the dispatch loop"
        assert all(task.done() for task in loops)

    asyncio.run(main())


def test_stop_does_not_wait_past_its_grace_for_a_claim_stuck_in_its_thread(make_core):
    """A claim held up in its worker thread (SQLite's busy timeout is 30 s) does not hold a shutdown: cancelling
    the dispatch loop does not wait for the thread's call (its result, when it comes, is dropped)."""
    core = make_core()
    entered, release = threading.Event(), threading.Event()

    class StuckQueue:
        def __getattr__(self, name: str) -> Any:
            return getattr(core.jobs, name)

        def claim(self, *args: Any) -> list[ClaimedJob]:
            entered.set()
            release.wait(60)
            return []

    registry = Registry()
    registry.handler(kind(), lambda job: None)
    runner = Runner(StuckQueue(), registry, poll_seconds=0.05)  # type: ignore[arg-type]

    async def main() -> None:
        runner.start()
        assert await asyncio.to_thread(entered.wait, 10), "the runner never claimed"
        await asyncio.wait_for(runner.stop(grace=0.2), 10)  # a stop that waited for the claim would wait 60 s

    try:
        asyncio.run(main())
    finally:
        release.set()


@pytest.mark.parametrize("after", range(2))
def test_the_queue_figures_read_while_a_job_is_enqueued_are_one_state(make_core, after):
    """stats() is one snapshot: a due job enqueued (forced) after any statement of the read is either counted
    queued and due, or neither; never due beyond what the statuses hold (PostgreSQL's READ COMMITTED)."""
    core = make_core()
    with core.db.session() as session:
        enqueue(session, kind(), run_at=time.time() - 5)  # one waiting already

    def add() -> None:
        with core.db.session() as session:
            enqueue(session, kind(), run_at=time.time() - 60)

    reader = make_core()
    now = time.time()
    reader.jobs.stats(now)  # the reader's connection is made first
    with commit_after(reader.db.engine, after, add):
        stats = reader.jobs.stats(now)
    queued = stats.by_status.get(JobStatus.QUEUED, 0)
    assert (queued, stats.due) in ((1, 1), (2, 2)), (stats.by_status, stats.due)
    assert stats.oldest_due_seconds >= (60 if queued == 2 else 5)
