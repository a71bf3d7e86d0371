"""``strongroom db upgrade``, ``strongroom serve`` and ``strongroom mock-exchange``: the commands
that may create a new installation (database, schema, master key file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.output import emit_json, note, said
from strongroom.serving import describe

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]


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
    for line in describe(done):
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
    from strongroom.cli.context import fail
    from strongroom.serving import ServeRefused
    from strongroom.serving import serve as run

    try:
        run(host, port, workers)
    except ServeRefused as exc:
        fail(exc.message, exc.code)


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
