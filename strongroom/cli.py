"""The ``strongroom`` command: serve, migrate, manage users, keys and the master key."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from strongroom.settings import get_settings

app = typer.Typer(help="Strongroom: exchange-account vault and platform API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
keys_app = typer.Typer(help="Platform API keys.", no_args_is_help=True)
master_app = typer.Typer(help="The master key (KEK).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(master_app, name="master-key")


def _core():
    from strongroom.core import build_core

    return build_core(get_settings())


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _admin_principal(core, username: str):
    from sqlalchemy import select

    from strongroom.models import User
    from strongroom.services.users import snapshot

    with core.db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            _fail(f"no user named {username!r}")
        return snapshot(user).principal(client_ip="cli", scheme="cli")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to the latest schema (Alembic)."""
    from strongroom.migrations import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    typer.echo("database is up to date")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to bind.")] = None,
) -> None:
    """Serve the HTTP API (prints a bootstrap admin's password once, on first start)."""
    import uvicorn

    from strongroom.app import create_app

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    core = _core()
    created = core.users.bootstrap_admin()
    if created:
        typer.echo("=" * 64)
        typer.echo("First start: created the bootstrap admin. This is shown once.")
        typer.echo(f"  username: {created[0]}")
        typer.echo(f"  password: {created[1]}")
        typer.echo("=" * 64)
    uvicorn.run(create_app(settings, core=core), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level, proxy_headers=False)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    usage_level: Annotated[str, typer.Option(help="basic, advanced, premier or market_maker.")] = "basic",
    email: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Create a user. The password is read from stdin (never from the command line)."""
    from strongroom.errors import DomainError

    if not password_stdin:
        _fail("pass --password-stdin and send the password on standard input", 2)
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = _core().users.create(username, password, email=email, is_admin=admin, usage_level=usage_level)
    except DomainError as exc:
        _fail(f"{exc.message} {exc.fields or ''}".strip())
    typer.echo(f"created user {user.username} (id {user.id}{', admin' if admin else ''})")


@users_app.command("set-level")
def users_set_level(username: str, level: str) -> None:
    """Set a user's usage level (basic, advanced, premier, market_maker)."""
    from strongroom.errors import DomainError
    from strongroom.principal import Principal

    core = _core()
    target = _admin_principal(core, username)
    operator = Principal(user_id=0, username="cli", is_admin=True, client_ip="cli", scheme="cli")
    try:
        core.users.set_usage_level(operator, target.user_id, level)
    except DomainError as exc:
        _fail(exc.message)
    typer.echo(f"{username} is now {level}")


@keys_app.command("generate")
def keys_generate(
    user: Annotated[str, typer.Option(help="Owner's username.")],
    name: Annotated[str, typer.Option(help="Key name.")],
    out: Annotated[Path, typer.Option(help="Where to write the private key (mode 0600).")],
    key_type: Annotated[str, typer.Option(help="rsa or ed25519.")] = "rsa",
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "read,write,delete",
) -> None:
    """Generate a key pair for a user (Kalshi-usable): prints the key id, writes the private key."""
    from strongroom.errors import DomainError

    core = _core()
    principal = _admin_principal(core, user)
    if out.exists():
        _fail(f"{out} exists; refusing to overwrite a private key")
    # Open the file first: a key whose private key could not be written would be unusable forever.
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    try:
        key, private_pem = core.api_keys.generate(
            principal, name=name, key_type=key_type, scopes=[s.strip() for s in scopes.split(",") if s.strip()])
    except BaseException as exc:
        os.close(fd)
        out.unlink(missing_ok=True)
        if isinstance(exc, DomainError):
            _fail(f"{exc.message} {exc.fields or ''}".strip())
        raise
    with os.fdopen(fd, "w") as fh:
        fh.write(private_pem)
    typer.echo(key.key_id)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="Owner's username.")],
    name: Annotated[str, typer.Option(help="Key name.")],
    kind: Annotated[str, typer.Option(help="bearer or hmac.")] = "bearer",
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes.")] = "read,write,delete",
) -> None:
    """Create a bearer or HMAC key for a user; prints the key id and, once, the secret."""
    from strongroom.errors import DomainError

    core = _core()
    principal = _admin_principal(core, user)
    try:
        key, secret = core.api_keys.create(principal, name=name, kind=kind,
                                           scopes=[s.strip() for s in scopes.split(",") if s.strip()])
    except DomainError as exc:
        _fail(f"{exc.message} {exc.fields or ''}".strip())
    typer.echo(f"key_id: {key.key_id}")
    typer.echo(f"secret: {secret}")


@master_app.command("rotate")
def master_rotate(batch: int = 100) -> None:
    """Add a master key version and re-wrap every data key (safe to re-run if interrupted)."""
    core = _core()
    version, count = core.key_rotation.rotate(batch, progress=lambda n: typer.echo(f"re-wrapped {n}"))
    typer.echo(f"master key version {version} is current; re-wrapped {count} data keys")


@master_app.command("rewrap")
def master_rewrap(batch: int = 100) -> None:
    """Finish an interrupted rotation: re-wrap data keys still under older versions."""
    core = _core()
    count = core.key_rotation.rewrap(batch, progress=lambda n: typer.echo(f"re-wrapped {n}"))
    typer.echo(f"re-wrapped {count} data keys; version {core.keys.current_version} is current")


@master_app.command("status")
def master_status() -> None:
    """Show the current master key version and how many records still use older ones."""
    core = _core()
    typer.echo(f"current version: {core.keys.current_version}; versions: {core.keys.versions()}; "
               f"records under older versions: {core.key_rotation.pending()}")


@app.command("mock-exchange")
def mock_exchange(host: str = "127.0.0.1", port: int = 8100) -> None:
    """Serve the loopback mock exchange (Binance and OKX, real signature checks); needs a source checkout."""
    import sys
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[1]  # devtools/ is beside strongroom/ in a checkout, never installed
    if not (checkout / "devtools" / "mock_exchange" / "__init__.py").is_file():
        typer.echo("the mock exchange is a development tool: run it from a source checkout "
                   "(python -m devtools.mock_exchange)", err=True)
        raise typer.Exit(1)
    sys.path.insert(0, str(checkout))
    from devtools.mock_exchange import serve as serve_mock

    serve_mock(host=host, port=port)


if __name__ == "__main__":
    app()
