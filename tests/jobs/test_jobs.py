"""Background jobs (strongroom.jobs): a leased job runs once per interval in a whole deployment, a flush
waits for a flush in flight, snapshot pruning is a job; in process on SQLite and PostgreSQL. Races are
forced with events, not hoped for."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select
from support.services import new_user

from strongroom.jobs import Housekeeping, LeaseStore, PeriodicJob
from strongroom.models import KeyUsage


def test_a_leased_job_runs_once_per_interval_across_two_runners(make_core):
    one, two = make_core(), make_core()  # two processes of one deployment: one database
    runs: list[str] = []
    name = f"job-{uuid.uuid4().hex[:8]}"

    def runner(core: Any, label: str) -> Housekeeping:
        # a 3 s interval: the second round below must come within it, even on a busy machine
        return Housekeeping([PeriodicJob(name, 3.0, lambda: runs.append(label), leased=True)], LeaseStore(core.db))

    runners = [runner(one, "one"), runner(two, "two")]
    barrier = threading.Barrier(2)

    def tick(hk: Housekeeping) -> bool:
        barrier.wait(10)
        return hk.run_job(hk.jobs[0])

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(tick, runners)) == [False, True]  # both timers fire at once: one runs it
        assert runs and len(runs) == 1
        assert sorted(pool.map(tick, runners)) == [False, False]  # within the interval: nobody again
        time.sleep(3.1)
        assert sorted(pool.map(tick, runners)) == [False, True]  # the next interval: once more
    assert len(runs) == 2
    assert LeaseStore(one.db).holder_of(name) in {runners[0].leases.holder, runners[1].leases.holder}


def test_per_process_jobs_run_everywhere_and_leased_ones_only_when_asked(make_core):
    core = make_core()
    runs: list[str] = []
    hk = Housekeeping([PeriodicJob("flush", 60, lambda: runs.append("flush")),
                       PeriodicJob(f"leased-{uuid.uuid4().hex[:8]}", 60, lambda: runs.append("leased"),
                                   leased=True)], LeaseStore(core.db))
    hk.run_jobs()
    assert runs == ["flush"]
    hk.run_jobs(leased=True)
    assert runs == ["flush", "flush", "leased"]


def test_the_core_prunes_snapshots_in_a_leased_job(make_core):
    core = make_core()
    jobs = {job.name: job for job in core.housekeeping.jobs}
    assert jobs["prune-snapshots"].leased and jobs["prune-snapshots"].interval == 3600
    assert not jobs["flush-key-usage"].leased and not jobs["flush-refusal-counts"].leased


def test_an_explicit_flush_waits_for_the_flush_in_flight(make_core):
    """The periodic flusher takes the batch and is still writing it when an explicit flush runs: the
    explicit flush returns only once the batch is written (issue 22 item 12)."""
    core = make_core()
    principal = new_user(core)
    key, _ = core.api_keys.create(principal, name="k")
    for _ in range(3):
        core.usage.touch(key.key_id)

    inside, release = threading.Event(), threading.Event()
    write = core.api_keys.record_usage

    def held_write(counts: Any) -> None:
        inside.set()
        assert release.wait(30), "the test never released the flush"
        write(counts)

    core.api_keys.record_usage = held_write
    with ThreadPoolExecutor(1) as pool:
        periodic = pool.submit(core.usage.flush)  # the periodic flusher: takes the batch, then waits
        assert inside.wait(30), "the periodic flush never started writing"
        core.api_keys.record_usage = write
        threading.Timer(0.3, release.set).start()
        core.housekeeping.run_jobs()  # the explicit flush (what tests and shutdown call)
        with core.db.session() as session:
            written = session.scalar(select(func.coalesce(func.sum(KeyUsage.count), 0))
                                     .where(KeyUsage.key_id == key.key_id))
        periodic.result(30)
    assert written == 3


def test_started_runners_try_a_leased_job_at_once_and_flush_at_stop(make_core):
    import asyncio

    core = make_core()
    runs: list[str] = []
    name = f"start-{uuid.uuid4().hex[:8]}"

    async def life(hk: Housekeeping, first: bool) -> None:
        hk.start()
        deadline = time.monotonic() + 30
        while first and "leased" not in runs:  # its try at start (a busy machine may take more than 0.5 s)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        await hk.stop()

    for n in range(2):  # a restart within the interval: the lease keeps it to one run
        hk = Housekeeping([PeriodicJob(name, 3600, lambda: runs.append("leased"), leased=True),
                           PeriodicJob("flush", 3600, lambda: runs.append("flush"))], LeaseStore(core.db))
        asyncio.run(life(hk, n == 0))
    assert runs == ["leased", "flush", "flush"]
