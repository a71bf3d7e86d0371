"""Periodic background work of a server process: batched writes that must never be one per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from anyio import to_thread

log = logging.getLogger("strongroom.housekeeping")


class Housekeeping:
    """Runs ``jobs`` (blocking callables: they write to the database) every ``interval`` seconds in a
    worker thread, and once more at stop, so nothing batched is lost at shutdown."""

    def __init__(self, interval: float, jobs: list[Callable[[], object]]) -> None:
        self.interval = interval
        self.jobs = jobs
        self._task: asyncio.Task[None] | None = None

    def run_jobs(self) -> None:
        """Run every job once; a failing job is logged (by type) and does not stop the others."""
        for job in self.jobs:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - housekeeping must go on
                log.error("housekeeping job %s failed: %s", getattr(job, "__qualname__", job), type(exc).__name__)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await to_thread.run_sync(self.run_jobs)

    def start(self) -> None:
        """Start the periodic task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the task and run every job a last time."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await to_thread.run_sync(self.run_jobs)
