"""``strongroom master-key``: status, rotate, rewrap, retire."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Annotated

import typer

from strongroom.cli.context import OPERATOR, confirm, fail, master_keys, open_core
from strongroom.cli.output import emit_json, note, record, said

app = typer.Typer(help="The master key (KEK): status, rotate, rewrap, retire.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]


def records(count: int) -> str:
    return f"{count} record" + ("" if count == 1 else "s")


Batch = Annotated[int, typer.Option(min=1, max=10_000, help="Records re-wrapped per committed batch.")]


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawing a bar with totals and time left on stderr
    (only on a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                   TextColumn("·"), TimeRemainingColumn(), console=console, disable=not console.is_terminal)
    task: list[TaskID] = []

    def update(done: int, total: int) -> None:
        if not task:
            task.append(bar.add_task(label, total=total))
        bar.update(task[0], completed=done, total=total)

    with bar:
        yield update


@app.command("status")
def master_status(as_json: Json = False) -> None:
    """Show the current version, every version with the records sealed under it, and what is pending.

    Exits 1 (after printing the status) when records use a version the key source does not hold.
    """
    from strongroom.vault.services import KeySourceIncomplete

    with open_core() as core:
        status = master_keys(core).status()
    versions = [{"version": v, "current": v == status.current_version, "records": n,
                 "held": v not in status.missing, "provider": status.providers.get(v)}
                for v, n in status.versions.items()]
    missing = [{"version": v, "records": n} for v, n in sorted(status.missing.items())]
    data = {
        "current_version": status.current_version,
        "versions": versions,
        "pending": status.pending,
        "missing": missing,
        "source": status.primary if status.primary != "file" else "file" if status.key_file else "environment",
        "key_file": str(status.key_file) if status.key_file else None,
    }
    if as_json:
        emit_json(data)
    else:
        record({**data, "versions": [f"{v['version']}:{v['records']}"
                                     + (f" ({v['provider']})" if v["held"] else " (missing)") for v in versions],
                "missing": [f"{m['version']}:{m['records']}" for m in missing] or "none"},
               fields=["current_version", "versions", "pending", "missing", "source", "key_file"])
    if status.missing:
        fail(str(KeySourceIncomplete(status.missing)))


@app.command("rotate")
def master_rotate(batch: Batch = 100, as_json: Json = False) -> None:
    """Add a master key version and re-wrap every record under it (safe to re-run if interrupted)."""
    with open_core() as core:
        service = master_keys(core)
        with _progress("re-wrapping") as progress:
            version, count = service.rotate(OPERATOR, batch, progress)
        key_file = service.status().key_file
    if as_json:
        emit_json({"current_version": version, "rewrapped": count, "key_file": str(key_file) if key_file else None})
        note(f"back up the key file now: {key_file}")
        return
    said(f"master key version {version} is current; re-wrapped {records(count)}")
    said(f"back up the key file now: {key_file} (older versions stay in it, decrypt-only, until retired)")


@app.command("rewrap")
def master_rewrap(batch: Batch = 100, as_json: Json = False) -> None:
    """Finish an interrupted rotation: re-wrap records still under older versions."""
    with open_core() as core:
        service = master_keys(core)
        with _progress("re-wrapping") as progress:
            count = service.rewrap(OPERATOR, batch, progress)
        version = core.keys.current_version
    if as_json:
        emit_json({"current_version": version, "rewrapped": count})
        return
    said(f"re-wrapped {records(count)}; version {version} is current")


class Target(str, Enum):
    PKCS11 = "pkcs11"
    AWS_KMS = "aws-kms"
    FILE = "file"


Provider = Annotated[Target, typer.Option("--to", help="The key source to move every record to.")]


@app.command("migrate")
def master_migrate(to: Provider, batch: Batch = 100, as_json: Json = False) -> None:
    """Move every record to another key source (an HSM, AWS KMS, the key file) while the server serves.

    Both sources must be configured (STRONGROOM_PKCS11_*, STRONGROOM_AWS_KMS_*, the key file). The pepper
    is imported first, then a version is made in the new source and every record re-wrapped under it;
    safe to interrupt and run again. Afterwards set STRONGROOM_KEY_PROVIDER to the new source.
    """
    with open_core() as core:
        service = master_keys(core)
        with _progress("re-wrapping") as progress:
            done = service.migrate(OPERATOR, to.value, batch, progress)
        status = service.status()
    left = [{"version": v, "provider": p, "records": n} for v, (p, n) in sorted(done.elsewhere.items())]
    if as_json:
        emit_json({"current_version": done.version, "provider": done.provider, "rewrapped": done.rewrapped,
                   "pending": status.pending, "elsewhere": left})
        return
    said(f"master key version {done.version} ({done.provider}) is current; re-wrapped {records(done.rewrapped)}")
    if status.pending:
        said(f"{records(status.pending)} still under older versions (a server had not seen the new version yet): "
             f"run 'strongroom master-key migrate --to {to.value}' again")
    elif left:
        said(f"set STRONGROOM_KEY_PROVIDER={to.value}; versions {', '.join(str(v['version']) for v in left)} "
             "seal nothing now: retire them ('strongroom master-key retire N'), then remove the old source")


@app.command("retire")
def master_retire(version: Annotated[int, typer.Argument(min=1, help="The version to remove.")],
                  yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
                  as_json: Json = False) -> None:
    """Remove an old master key version for good (never the current one, nor one still in use)."""
    with open_core() as core:
        service = master_keys(core)
        confirm(f"Remove master key version {version} from the key file for good?", yes)
        service.retire(OPERATOR, version)
        status = service.status()
    if as_json:
        emit_json({"retired_version": version, "current_version": status.current_version,
                   "versions": list(status.versions)})
        return
    said(f"retired master key version {version}; versions left: {', '.join(map(str, status.versions))} "
         "(backups of the key file made before still hold it)")
