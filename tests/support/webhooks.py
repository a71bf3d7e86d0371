"""Helpers of the webhooks tests: fast settings, a job runner on a thread's loop, events and waiting for deliveries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from strongroom.enums import DeliveryStatus, EventType, JobStatus
from strongroom.events import record
from strongroom.jobs.runner import Runner, build_runner
from strongroom.principal import Principal

FAST = {"webhook_allow_private": True, "webhook_retry_seconds": "0.3,0.3,0.3", "jobs_poll_seconds": 0.1}


@contextmanager
def running(core: Any) -> Iterator[Runner]:
    """The core's job runner (its built-in webhook handlers) on an event loop of its own thread."""
    runner = build_runner(core)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> None:
        runner.start()

    async def stop() -> None:
        await runner.stop(2)

    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    try:
        yield runner
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def wait_attempted(core: Any, principal: Principal, endpoint_id: str, timeout: float = 10) -> list[Any]:
    """Return the endpoint's deliveries that have an attempt, once one has; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := [d for d in deliveries(core, principal, endpoint_id) if d.attempt_log]):
        assert time.monotonic() < deadline, f"no attempt within {timeout} s: {deliveries(core, principal, endpoint_id)}"
        time.sleep(0.05)
    return found


def wait_idle(core: Any, timeout: float = 30) -> None:
    """Return once no job is running or due: the runner's first round of scheduled jobs (which may fill its
    concurrency) is over, so what a test starts next gets a slot at once."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.time()
        busy = [j for j in core.jobs.list(limit=200)
                if j.status == JobStatus.RUNNING or (j.status == JobStatus.QUEUED and j.run_at <= now)]
        if not busy:
            return
        assert time.monotonic() < deadline, f"the runner is still busy: {busy}"
        time.sleep(0.05)


def emit(core: Any, user_id: int | None, type: EventType = EventType.EXCHANGE_ACCOUNT_CONNECTED,
         **data: Any) -> str:
    with core.db.session() as session:
        return record(session, type, user_id=user_id, data=data or {"account_id": 7}).public_id


def deliveries(core: Any, principal: Principal, endpoint_id: str) -> list[Any]:
    return core.webhooks.deliveries(principal, endpoint_id).items


def wait_status(core: Any, principal: Principal, endpoint_id: str, status: DeliveryStatus, count: int = 1,
                timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in deliveries(core, principal, endpoint_id) if d.status == status]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"deliveries: {deliveries(core, principal, endpoint_id)}"
        time.sleep(0.05)
