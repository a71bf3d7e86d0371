"""``strongroom jobs list|retry|cancel``: the durable job queue (retry and cancel audited as ``job.retry`` and
``job.cancel`` by the operator); ``strongroom worker``: a job runner process."""

from __future__ import annotations

import asyncio
import logging
import signal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom.cli.context import OPERATOR, fail, open_core
from strongroom.cli.output import iso, record, said, table

if TYPE_CHECKING:
    from strongroom.jobs.queue import JobView

app = typer.Typer(help="Durable background jobs: list, retry, cancel.", no_args_is_help=True)
log = logging.getLogger("strongroom")

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
COLUMNS = [("id", "ID"), ("kind", "KIND"), ("status", "STATUS"), ("attempts", "ATTEMPTS"),
           ("max_attempts", "MAX"), ("run_at", "RUN AT"), ("last_error", "LAST ERROR"), ("updated_at", "UPDATED")]


class StatusChoice(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELED = "canceled"


def shape(job: JobView) -> dict[str, Any]:
    """A job as JSON (no payload: it is the handler's business, and shown nowhere)."""
    from datetime import UTC, datetime

    def at(epoch: float | None) -> str | None:
        return iso(datetime.fromtimestamp(epoch, UTC).replace(microsecond=0)) if epoch is not None else None

    return {"id": job.id, "kind": job.kind, "status": str(job.status), "attempts": job.attempts,
            "max_attempts": job.max_attempts, "run_at": at(job.run_at), "lease_owner": job.lease_owner,
            "lease_expires_at": at(job.lease_expires_at), "last_error": job.last_error,
            "created_at": iso(job.created_at), "updated_at": iso(job.updated_at)}


@app.command("list")
def jobs_list(
    status: Annotated[StatusChoice | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many of the newest jobs.")] = 50,
    as_json: Json = False,
) -> None:
    """List jobs, newest first."""
    from strongroom.enums import JobStatus

    with open_core() as core:
        jobs = core.jobs.list(status=JobStatus(status.value) if status else None, kind=kind, limit=limit)
    table([shape(j) for j in jobs], COLUMNS, as_json=as_json, empty="no jobs")


@app.command("retry")
def jobs_retry(job_id: Annotated[int, typer.Argument(help="The job's id.")], as_json: Json = False) -> None:
    """Queue a dead or canceled job again (due now, attempts from zero)."""
    with open_core() as core:
        job = core.jobs.retry(OPERATOR, job_id)
    if as_json:
        record(shape(job), as_json=True)
    else:
        said(f"job {job.id} ({job.kind}) queued again")


@app.command("cancel")
def jobs_cancel(job_id: Annotated[int, typer.Argument(help="The job's id.")], as_json: Json = False) -> None:
    """Cancel a queued or running job (a running attempt's outcome is then not recorded)."""
    with open_core() as core:
        job = core.jobs.cancel(OPERATOR, job_id)
    if as_json:
        record(shape(job), as_json=True)
    else:
        said(f"job {job.id} ({job.kind}) canceled")


def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, max=1000, help="Jobs run at once (default "
                                                    "STRONGROOM_JOBS_CONCURRENCY).")] = None,
) -> None:
    """Run jobs until stopped (SIGTERM or Ctrl-C): any number of workers, on any node, share the database.

    With separate workers, set STRONGROOM_JOBS=off for `serve`. Needs a migrated database (`strongroom db upgrade`).
    """
    from strongroom import logs
    from strongroom.jobs.runner import JobsConfigError, build_runner
    from strongroom.settings import get_settings, unknown_variables

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    for warning in unknown_variables():
        log.warning(warning)
    with open_core() as core:
        try:
            runner = build_runner(core, concurrency=concurrency)
        except JobsConfigError as exc:
            fail(exc.message, 2)
        if runner.idle:
            log.warning("worker: no job handler and no schedule registered (STRONGROOM_JOB_HANDLERS): nothing to run")

        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            runner.start()
            log.info("worker %s running (concurrency %d)", core.jobs.holder, runner.concurrency)
            await stop.wait()
            log.info("worker stopping: letting running jobs finish")
            await runner.stop()

        asyncio.run(run())


def register(root: typer.Typer) -> None:
    """Add ``jobs`` and ``worker`` to the root command."""
    root.add_typer(app, name="jobs")
    root.command("worker")(worker)
