"""Periodic jobs of a server process, each on its own interval, leased ones once per deployment."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from anyio import to_thread

from strongroom.jobs.leases import LeaseStore

log = logging.getLogger("strongroom.jobs")


class Job(Protocol):
    """A periodic job. ``run`` blocks (database writes) and should not raise; the runner logs what it does."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    @property
    def leased(self) -> bool: ...

    def run(self) -> object: ...


@dataclass(frozen=True)
class PeriodicJob:
    """A :class:`Job` made of a callable."""

    name: str
    interval: float
    action: Callable[[], object] = field(repr=False)
    leased: bool = False  # True: once per deployment per interval (under a lease), else in every process

    def run(self) -> object:
        return self.action()


class Housekeeping:
    """Runs ``jobs`` each every ``job.interval`` seconds in a worker thread while started (a leased job
    also tries once at start: restarts more frequent than its interval do not starve it, and its lease
    keeps it to once per interval anyway).

    Per-process jobs also run once more at :meth:`stop`, so nothing batched is lost at shutdown.
    A leased job runs only when this process takes its lease (``leases``) for the interval; with
    no lease store, leased jobs never run here.
    """

    def __init__(self, jobs: list[Job], leases: LeaseStore | None = None) -> None:
        self.jobs = jobs
        self.leases = leases
        self._tasks: list[asyncio.Task[None]] = []
        self._locks = {job.name: threading.Lock() for job in jobs}  # one run of a job at a time per process

    def run_job(self, job: Job) -> bool:
        """Run ``job`` now (a leased one only if its lease is taken); return whether it ran. Never raises."""
        try:
            if job.leased and (self.leases is None or not self.leases.acquire(job.name, job.interval)):
                return False
            with self._locks[job.name]:
                job.run()
        except Exception as exc:  # noqa: BLE001 - housekeeping must go on; the type only (texts carry data)
            log.error("job %s failed: %s", job.name, type(exc).__name__)
        return True

    def run_jobs(self, *, leased: bool = False) -> None:
        """Run every per-process job once (flush every batch), and the leased ones too if ``leased``."""
        for job in self.jobs:
            if leased or not job.leased:
                self.run_job(job)

    async def _loop(self, job: Job) -> None:
        if job.leased:  # a first try at start: the lease says whether the deployment ran it within the interval
            await to_thread.run_sync(self.run_job, job)
        while True:
            await asyncio.sleep(job.interval)
            await to_thread.run_sync(self.run_job, job)

    def start(self) -> None:
        """Start one periodic task per job on the running event loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(job), name=f"job:{job.name}") for job in self.jobs]

    async def stop(self) -> None:
        """Stop the tasks and run every per-process job a last time."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        await to_thread.run_sync(self.run_jobs)
