"""``strongroom db upgrade``, ``strongroom serve`` and ``strongroom mock-exchange``: the commands
that may create a new installation (database, schema, master key file)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strongroom import logs
from strongroom.cli.output import emit_json, note, said

if TYPE_CHECKING:
    from strongroom.datastore import Prepared

log = logging.getLogger("strongroom")

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]


def _describe(done: Prepared) -> list[str]:
    """Return the sentences saying what :func:`strongroom.datastore.prepare` did."""
    if done.before is None:
        lines = [f"created database {done.database} (schema {done.after})"]
    elif done.before != done.after:
        lines = [f"upgraded database {done.database} from schema {done.before} to {done.after}"]
    else:
        lines = [f"database {done.database} is up to date (schema {done.after})"]
    if done.tightened:
        lines.append(f"made {len(done.tightened)} data path{'s' if len(done.tightened) != 1 else ''} private "
                     f"(files 0600, directory 0700): {', '.join(p.name for p in done.tightened)}")
    if done.master_key_created:
        lines.append(f"created master key file {done.master_key_file} (mode 0600): back it up; "
                     "without it nothing stored can be decrypted")
    return lines


@db_app.command("upgrade")
def db_upgrade(as_json: Json = False) -> None:
    """Create the database if there is none, and migrate it to this version's schema.

    A new installation also gets its master key file (mode 0600). Nothing is created next to a
    database that already holds data sealed with a master key this command cannot find.
    """
    from strongroom import datastore
    from strongroom.settings import load_settings, unknown_variables

    settings = load_settings()
    for warning in unknown_variables():
        note(f"warning: {warning}")
    done = datastore.prepare(settings)
    if as_json:
        emit_json({"database": done.database, "created": done.before is None,
                   "from_revision": done.before, "to_revision": done.after,
                   "master_key_file": str(done.master_key_file) if done.master_key_file else None,
                   "master_key_created": done.master_key_created})
        return
    for line in _describe(done):
        said(line)


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default STRONGROOM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to bind (default STRONGROOM_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each a full server on the "
                                         "port; set STRONGROOM_REDIS_URL so they share limits).")] = 1,
) -> None:
    """Serve the HTTP API (migrates an unmigrated database first).

    On the very first start it prints a bootstrap admin's password, once.
    """
    import uvicorn

    from strongroom import datastore
    from strongroom.app import create_app
    from strongroom.cli.context import fail
    from strongroom.core import build_core
    from strongroom.crypto.keyring import KeyringError
    from strongroom.settings import load_settings, unknown_variables
    from strongroom.vault.services import KeySourceIncomplete

    settings = load_settings()
    done = datastore.prepare(settings)  # before logging is set up: its one line says what Alembic did
    if done.before != done.after or done.master_key_created or done.tightened:
        for line in _describe(done):
            note(line)
    logs.configure(settings.log_level, settings.log_format)
    for warning in unknown_variables():
        log.warning(warning)
    try:
        core = build_core(settings)
    except KeyringError as exc:  # the HSM or KMS cannot be reached, or holds nothing the records need
        fail(f"cannot serve: master key: {exc}")
    try:
        core.keys.check()  # every configured key source answers
        core.vault.check_key_source()  # records under a version the key source lacks: refuse, no half-working server
    except KeyringError as exc:
        core.close()
        fail(f"cannot serve: master key: {exc}")
    except KeySourceIncomplete as exc:
        core.close()
        fail(f"cannot serve: {exc}")
    if settings.jobs == "inline":  # a handler module that does not load: refuse now, not in the app's start-up
        from strongroom.jobs.runner import JobsConfigError, Registry, load_handlers

        try:
            load_handlers(settings.job_handlers, Registry(services=core))
        except JobsConfigError as exc:
            core.close()
            fail(exc.message, 2)
    created = core.users.bootstrap_admin()
    if created:
        _tell_bootstrap_password(*created, settings.data_dir)
    # our access record (strongroom.logs) replaces uvicorn's access log: one record per request
    options: dict[str, Any] = {"host": host or settings.host, "port": port or settings.port,
                               "log_level": settings.log_level, "log_config": None, "proxy_headers": False,
                               "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(settings, core=core), **options)
        return
    core.close()  # each worker builds its own core (and its own connections) from the same settings
    if not settings.redis_url:
        note(f"{workers} workers without STRONGROOM_REDIS_URL: rate limits, failure budgets and the replay "
             "guard are per worker")
    # /metrics sums every worker: prometheus_client's multiprocess mode, in a directory of this serve's own
    # (the workers are spawned: they inherit the variable and read it when they import prometheus_client)
    metrics_dir = tempfile.mkdtemp(prefix="strongroom-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run("strongroom.app:worker_app", factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


PASSWORD_FILE = "initial-admin-password"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode (strongroom.metrics)


def _tell_bootstrap_password(username: str, password: str, data_dir: Path) -> None:
    """Show the bootstrap admin's password once, never through the log stream: on the terminal when
    stdout is one, else in ``<data_dir>/initial-admin-password`` (mode 0600) with a line saying where."""
    typer.echo("=" * 64)
    if sys.stdout.isatty():
        typer.echo("First start: created the bootstrap admin. This is shown once.")
        typer.echo(f"  username: {username}")
        typer.echo(f"  password: {password}")
    else:
        path = (data_dir / PASSWORD_FILE).resolve()
        path.unlink(missing_ok=True)  # a leftover of an earlier installation: never written through
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        typer.echo(f"First start: created the bootstrap admin '{username}'. No terminal: its password is in")
        typer.echo(f"  {path} (mode 0600): read it, sign in, then delete the file.")
    typer.echo("(lost it? 'strongroom users set-password admin' sets a new one)")
    typer.echo("=" * 64)


def mock_exchange(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to bind.")] = 8100,
) -> None:
    """Serve the loopback mock exchange (Binance and OKX, real signature checks); needs a source checkout."""
    from strongroom.cli.context import fail

    checkout = Path(__file__).resolve().parents[2]  # devtools/ is beside strongroom/ in a checkout, never installed
    if not (checkout / "devtools" / "mock_exchange" / "__init__.py").is_file():
        fail("the mock exchange is a development tool: run it from a source checkout "
             "(python -m devtools.mock_exchange)")
    sys.path.insert(0, str(checkout))
    from devtools.mock_exchange import serve as serve_mock

    serve_mock(host=host, port=port)


def register(app: typer.Typer) -> None:
    """Add these commands to the root ``app``."""
    app.add_typer(db_app, name="db")
    app.command("serve")(serve)
    app.command("mock-exchange")(mock_exchange)
