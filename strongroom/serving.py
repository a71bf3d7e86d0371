"""``strongroom serve``: prepare the data, build the core and serve the application with uvicorn.

Kept apart from the command line (Typer, Rich and every command group, which serving does not need): the
``strongroom`` entry point (:mod:`strongroom.launch`) starts ``serve`` through here without importing them,
so that a restarted server answers sooner. What it prints goes to stdout and stderr directly; a refusal is
:class:`ServeRefused`, which the command line reports as its one ``error:`` line and exit status.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom import logs

if TYPE_CHECKING:
    from strongroom.datastore import Prepared

log = logging.getLogger("strongroom")

PASSWORD_FILE = "initial-admin-password"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode (strongroom.metrics)


class ServeRefused(Exception):
    """The server cannot start; ``code`` is the exit status (1, or 2 for a configuration error)."""

    def __init__(self, message: str, code: int = 1) -> None:
        self.message = message
        self.code = code
        super().__init__(message)


def describe(done: Prepared) -> list[str]:
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


def echo(message: str, err: bool = False) -> None:
    """Print one line for the operator (stdout, or stderr for a note), flushed at once."""
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Serve the HTTP API until stopped (migrating an unmigrated database first; on the very first start,
    telling the bootstrap admin's password once). Raises ServeRefused (the master key cannot be reached or
    lacks a version the records need, a job handler does not load), SettingsError and what preparing the
    data raises (DataError, database errors)."""
    import uvicorn

    from strongroom import datastore
    from strongroom.app import create_app
    from strongroom.core import build_core
    from strongroom.crypto.keyring import KeyringError
    from strongroom.settings import load_settings, unknown_variables
    from strongroom.vault.services import KeySourceIncomplete

    settings = load_settings()
    done = datastore.prepare(settings)  # before logging is set up: its one line says what Alembic did
    if done.before != done.after or done.master_key_created or done.tightened:
        for line in describe(done):
            echo(line, err=True)
    logs.configure(settings.log_level, settings.log_format)
    for warning in unknown_variables():
        log.warning(warning)
    try:
        core = build_core(settings)
    except KeyringError as exc:  # the HSM or KMS cannot be reached, or holds nothing the records need
        raise ServeRefused(f"cannot serve: master key: {exc}") from None
    try:
        core.keys.check()  # every configured key source answers
        core.vault.check_key_source()  # records under a version the key source lacks: refuse, no half-working server
    except KeyringError as exc:
        core.close()
        raise ServeRefused(f"cannot serve: master key: {exc}") from None
    except KeySourceIncomplete as exc:
        core.close()
        raise ServeRefused(f"cannot serve: {exc}") from None
    if settings.jobs == "inline":  # a handler module that does not load: refuse now, not in the app's start-up
        from strongroom.jobs.runner import JobsConfigError, Registry, load_handlers

        try:
            load_handlers(settings.job_handlers, Registry(services=core))
        except JobsConfigError as exc:
            core.close()
            raise ServeRefused(exc.message, 2) from None
    created = core.users.bootstrap_admin()
    if created:
        _tell_bootstrap_password(*created, settings.data_dir)
    # our access record (strongroom.logs) replaces uvicorn's access log: one record per request
    options: dict[str, Any] = {"host": host or settings.host, "port": port or settings.port,
                               "log_level": settings.log_level, "log_config": None, "proxy_headers": False,
                               "access_log": False}
    if workers == 1:
        app = create_app(settings, core=core)
        settle_heap()
        uvicorn.run(app, **options)
        return
    core.close()  # each worker builds its own core (and its own connections) from the same settings
    if not settings.redis_url:
        echo(f"{workers} workers without STRONGROOM_REDIS_URL: rate limits, failure budgets and the replay "
             "guard are per worker", err=True)
    # /metrics sums every worker: prometheus_client's multiprocess mode, in a directory of this serve's own
    # (the workers are spawned: they inherit the variable and read it when they import prometheus_client)
    metrics_dir = tempfile.mkdtemp(prefix="strongroom-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    settle_heap()  # the supervisor's (each worker freezes its own: strongroom.app.worker_app)
    try:
        uvicorn.run("strongroom.app:worker_app", factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


def settle_heap() -> None:
    """Move every object start-up built (modules, settings, the core, the app) into the collector's permanent
    generation, and turn cyclic garbage collection on (``strongroom serve`` starts with it off).

    They live as long as the process: a full collection while serving no longer scans them (measured on this
    build: 0.1 ms instead of 100-180 ms on a loaded 2-core machine). The few cycles start-up left unreachable
    (some 800 objects, about 2,600 memory blocks) stay uncollected; collecting them first would cost a full
    collection here.
    """
    gc.freeze()
    gc.enable()


def _tell_bootstrap_password(username: str, password: str, data_dir: Path) -> None:
    """Show the bootstrap admin's password once, never through the log stream: on the terminal when
    stdout is one, else in ``<data_dir>/initial-admin-password`` (mode 0600) with a line saying where."""
    echo("=" * 64)
    if sys.stdout.isatty():
        echo("First start: created the bootstrap admin. This is shown once.")
        echo(f"  username: {username}")
        echo(f"  password: {password}")
    else:
        path = (data_dir / PASSWORD_FILE).resolve()
        path.unlink(missing_ok=True)  # a leftover of an earlier installation: never written through
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        echo(f"First start: created the bootstrap admin '{username}'. No terminal: its password is in")
        echo(f"  {path} (mode 0600): read it, sign in, then delete the file.")
    echo("(lost it? 'strongroom users set-password admin' sets a new one)")
    echo("=" * 64)
