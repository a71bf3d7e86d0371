"""The job runner: claims due jobs (:mod:`strongroom.jobs.queue`), runs their handlers, fires schedules.

One runner per process, on an asyncio loop: inside ``strongroom serve`` (``STRONGROOM_JOBS=inline``)
or as its own process (``strongroom worker --concurrency N``, any number, on any node). It runs
at most ``concurrency`` jobs at once; a running job's lease is extended every third of the lease,
so only a dead worker's jobs expire (and run again). A handler is a function of one
:class:`~strongroom.jobs.queue.ClaimedJob`, sync (run in a worker thread) or async; it must be
idempotent (a job runs at least once). It succeeds by returning; it fails by raising: after
:func:`~strongroom.jobs.queue.backoff`, or dead after the last attempt (a
:class:`~strongroom.jobs.queue.JobFailed` with ``permanent=True``: dead at once).

Wake-ups: PostgreSQL ``LISTEN strongroom_jobs`` (``enqueue`` notifies at commit) where the database
is PostgreSQL, else (and as a fallback) polling every ``poll_seconds``.

Handlers and schedules come from registration functions, ``module:function`` names: the built-in ones
(:data:`BUILTIN_HANDLERS`: the scheduled work of every deployment, :mod:`strongroom.jobs.builtin`), then
those in ``STRONGROOM_JOB_HANDLERS`` (comma-separated): each is called once with the :class:`Registry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread

from strongroom.jobs.queue import ClaimedJob, JobFailed, JobQueue, ScheduleSpec, backoff

log = logging.getLogger("strongroom.jobs")

# The capabilities' own handlers, registered in every runner before STRONGROOM_JOB_HANDLERS (imported by name: the
# jobs package imports no capability above it).
Handler = Callable[[ClaimedJob], object | Awaitable[object]]

# Strongroom's own registration functions, called before STRONGROOM_JOB_HANDLERS by every runner.
AttemptCounter = Callable[[str, str], None]  # (kind, outcome): succeeded, retry, dead, lost


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    run: Handler
    backoff_base: float = 5.0  # seconds before the first retry (about: jittered), doubling each time
    backoff_cap: float = 3600.0


class JobsConfigError(Exception):
    """``STRONGROOM_JOB_HANDLERS`` names something that cannot be loaded. ``message`` is one line."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass
class Registry:
    """Handlers by kind and schedules, filled by registration functions. ``services`` is what handlers may
    need of the process (the core), given by whoever builds the runner."""

    services: Any = None
    handlers: dict[str, HandlerSpec] = field(default_factory=dict)
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def on_stop(self, close: Callable[[], Awaitable[None]]) -> None:
        """Await ``close()`` when the runner stops, after its jobs (e.g. to close a handler's HTTP client)."""
        self.closers.append(close)

    def handler(self, kind: str, run: Handler, *, backoff_base: float = 5.0, backoff_cap: float = 3600.0) -> None:
        """Run jobs of ``kind`` with ``run`` (one handler per kind: a second registration replaces the first)."""
        self.handlers[kind] = HandlerSpec(kind, run, backoff_base, backoff_cap)

    def schedule(self, name: str, kind: str, interval: float, payload: dict[str, Any] | None = None) -> None:
        """Enqueue a job of ``kind`` every ``interval`` seconds, once per deployment."""
        if interval <= 0:
            raise ValueError("a schedule's interval is positive")
        self.schedules[name] = ScheduleSpec(name, kind, interval, dict(payload or {}))


# Registration functions every runner calls first, before STRONGROOM_JOB_HANDLERS ("module:function").
BUILTIN_HANDLERS: tuple[str, ...] = (
    "strongroom.jobs.builtin:register",  # expiry scan, key health, balance refresh, retention
    "strongroom.trading.jobs:register",  # trading.reconcile: an order whose placement is not known
    "strongroom.webhooks:register",  # webhook deliveries and their sweep
)


def load_handlers(spec: str | None, registry: Registry, builtin: Sequence[str] = ()) -> Registry:
    """Call each ``module:function`` of ``builtin``, then of ``spec`` (comma-separated), with ``registry``;
    return it. (A handler of ``spec`` for a built-in kind replaces the built-in one.)

    Raises JobsConfigError naming the entry that does not load (never its module's error text).
    """
    entries = [*builtin, *(part.strip() for part in (spec or "").split(","))]
    for entry in filter(None, entries):
        module_name, _, attr = entry.partition(":")
        try:
            register = getattr(importlib.import_module(module_name), attr, None) if attr else None
        except ImportError:
            register = None
        except Exception as exc:  # noqa: BLE001 - a module failing at import: one line, its type only
            raise JobsConfigError(f"STRONGROOM_JOB_HANDLERS: importing {module_name} failed "
                                  f"({type(exc).__name__})") from None
        if not callable(register):
            raise JobsConfigError(f"STRONGROOM_JOB_HANDLERS must name module:function registration functions "
                                  f"(cannot load {entry})")
        try:
            register(registry)
        except Exception as exc:  # noqa: BLE001 - one line, its type only (texts may carry data)
            raise JobsConfigError(f"STRONGROOM_JOB_HANDLERS: {entry} failed ({type(exc).__name__})") from None
    return registry


def listen_url(database_url: str) -> str | None:
    """Return a libpq URL to LISTEN on for ``database_url``, or None where there is no LISTEN (SQLite)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in ("psycopg", ""):
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Runner:
    """Runs the jobs of ``registry``'s kinds and fires its schedules while started."""

    def __init__(self, queue: JobQueue, registry: Registry, *, concurrency: int = 4, lease_seconds: float = 60.0,
                 poll_seconds: float = 1.0, listen: str | None = None,
                 count: AttemptCounter | None = None) -> None:
        self.queue = queue
        self.registry = registry
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.listen = listen
        self.count = count
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def idle(self) -> bool:
        """Nothing to run here: no handler and no schedule (the runner then does not start at all)."""
        return not self.registry.handlers and not self.registry.schedules

    def start(self) -> None:
        """Start claiming on the running loop (no-op for an idle registry)."""
        if self.idle:
            return
        self._wake = asyncio.Event()
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._dispatch(), name="jobs:dispatch")]
        if self.listen:
            self._loops.append(loop.create_task(self._listen(self.listen), name="jobs:listen"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running jobs finish for ``grace`` seconds, then cancel them (their leases
        expire and they run again elsewhere)."""
        self._stopping = True  # the dispatch loop also ends on its own at its next turn (see _dispatch)
        for task in self._loops:
            task.cancel()
        if self._loops:  # asyncio.wait: a cancel of this stop itself is not swallowed with the loops' own
            await asyncio.wait(self._loops)
            for task in self._loops:
                if not task.cancelled():
                    task.exception()  # retrieved: a loop ends by its cancel or its flag, nothing else is news
        self._loops = []
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        for close in self.registry.closers:
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - stopping goes on; the type only
                log.warning("job runner: a closer failed (%s)", type(exc).__name__)

    def wake(self) -> None:
        self._wake.set()

    async def _dispatch(self) -> None:
        kinds = sorted(self.registry.handlers)
        schedules = list(self.registry.schedules.values())
        next_fire = 0.0
        while not self._stopping:
            try:
                if schedules and time.monotonic() >= next_fire:
                    next_fire = time.monotonic() + min(self.poll_seconds, *(s.interval for s in schedules))
                    if await to_thread.run_sync(self.queue.fire_schedules, schedules):
                        continue  # what a schedule enqueued is claimed at once
                free = self.concurrency - len(self._tasks)
                claimed = await to_thread.run_sync(self.queue.claim, kinds, free, self.lease_seconds) if free else []
                for job in claimed:
                    task = asyncio.get_running_loop().create_task(self._run(job), name=f"job:{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if claimed and len(claimed) == free:
                    continue  # maybe more are due: claim again when a slot frees (the wait below)
            except Exception as exc:  # noqa: BLE001 - a database fault: log its type, wait, try again
                log.warning("job runner: claiming failed (%s); trying again", type(exc).__name__)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the inner result when the wake-up and a
            # cancel land in the same turn, swallowing the cancel (a stop then waited for ever on this loop)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a free slot: claim again

    async def _heartbeat(self, job: ClaimedJob) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await to_thread.run_sync(self.queue.extend, job, self.lease_seconds):
                    # no longer ours (canceled, or the lease was lost): the outcome will not be written
                    log.warning("job %s (%s) attempt %d: its lease is no longer held (canceled, or it expired "
                                "and another runner took the job)", job.id, job.kind, job.attempt)
                    return
            except Exception as exc:  # noqa: BLE001 - try again at the next beat
                log.warning("job %s: extending its lease failed (%s)", job.id, type(exc).__name__)

    async def _run(self, job: ClaimedJob) -> None:
        spec = self.registry.handlers[job.kind]
        beat = asyncio.get_running_loop().create_task(self._heartbeat(job))
        outcome = "succeeded"
        try:
            try:
                if inspect.iscoroutinefunction(spec.run):
                    await spec.run(job)
                else:
                    result = await to_thread.run_sync(spec.run, job)
                    if inspect.isawaitable(result):
                        await result
            finally:
                beat.cancel()
        except asyncio.CancelledError:
            raise  # stopping: the lease expires and the job runs again
        except Exception as exc:  # noqa: BLE001 - a failed attempt is recorded, never raised
            reason = exc.reason if isinstance(exc, JobFailed) else type(exc).__name__
            delay = backoff(job.attempt, spec.backoff_base, spec.backoff_cap)
            permanent = isinstance(exc, JobFailed) and exc.permanent
            try:
                status = await to_thread.run_sync(lambda: self.queue.fail(job, reason, delay, permanent=permanent))
            except Exception as db_exc:  # noqa: BLE001 - not recorded: the lease expires and it runs again
                log.warning("job %s: recording its failure failed (%s)", job.id, type(db_exc).__name__)
                return
            outcome = "lost" if status is None else "dead" if status == "dead" else "retry"
            log.log(logging.ERROR if outcome == "dead" else logging.WARNING, "job %s (%s) attempt %d failed: %s%s",
                    job.id, job.kind, job.attempt, reason, "; dead" if outcome == "dead" else "")
        else:
            try:
                outcome = "succeeded" if await to_thread.run_sync(self.queue.succeed, job) else "lost"
                if outcome == "lost":
                    log.warning("job %s (%s) attempt %d finished, but its lease is no longer held: the outcome is "
                                "not recorded", job.id, job.kind, job.attempt)
            except Exception as db_exc:  # noqa: BLE001 - not recorded: runs again after the lease (idempotent)
                log.warning("job %s: recording its success failed (%s)", job.id, type(db_exc).__name__)
                outcome = "lost"
        if self.count is not None:
            self.count(job.kind, outcome)

    async def _listen(self, url: str) -> None:
        """Set the wake-up event on each NOTIFY; reconnect after a failure (polling goes on meanwhile)."""
        import psycopg

        from strongroom.jobs.queue import CHANNEL

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # anything enqueued while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - no wake-ups for a while: polling still claims
                log.warning("job runner: LISTEN failed (%s); polling meanwhile", type(exc).__name__)
            await asyncio.sleep(max(self.poll_seconds, 1.0))


def build_runner(core: Any, *, concurrency: int | None = None) -> Runner:
    """Return the runner of ``core``'s process: the built-in handlers (:data:`BUILTIN_HANDLERS`), then those of
    STRONGROOM_JOB_HANDLERS; settings from the core.

    Raises JobsConfigError when a registration function does not load.
    """
    settings = core.settings
    registry = load_handlers(settings.job_handlers, Registry(services=core), BUILTIN_HANDLERS)
    return Runner(core.jobs, registry, concurrency=concurrency or settings.jobs_concurrency,
                  lease_seconds=settings.jobs_lease_seconds, poll_seconds=settings.jobs_poll_seconds,
                  listen=listen_url(settings.effective_database_url), count=core.metrics.job_attempt)
