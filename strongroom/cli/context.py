"""What every command shares: the operator principal, opening the core only where the data is
ready, confirmation and password prompts, and the one-line error report."""

from __future__ import annotations

import asyncio
import getpass
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar, overload

import typer

from strongroom.enums import AuthMethod
from strongroom.principal import Principal

if TYPE_CHECKING:
    from strongroom.core import Core
    from strongroom.pagination import Page
    from strongroom.vault.masterkeys import MasterKeyService

T = TypeVar("T")



def operator_client() -> str:
    """Return the audit's client for the command line: ``cli:<the operator's OS user>`` (``cli:alice``)."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (some containers)
        who = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"cli:{who}"[:64]


# The operator at the command line: an admin who is no user (audited as actor 0, client "cli:<OS user>").
OPERATOR = Principal(user_id=0, username="operator", is_admin=True, client_ip=operator_client(),
                     scheme=AuthMethod.CLI)


class CliError(Exception):
    """A refusal of the command line itself; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        self.message = message
        self.code = code
        super().__init__(message)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command with ``error: message`` on stderr and exit status ``code``."""
    raise CliError(message, code)


@contextmanager
def open_core() -> Iterator[Core]:
    """Yield the core for the configured data, closed afterwards.

    Creates nothing: raises SettingsError or DataError (missing data directory or database, not
    migrated, no master key file) with the fix in the message.
    """
    from strongroom import datastore
    from strongroom.core import build_core
    from strongroom.settings import load_settings

    settings = load_settings()
    datastore.check_ready(settings)
    core = build_core(settings)
    try:
        yield core
    finally:
        core.close()


def master_keys(core: Core) -> MasterKeyService:
    from strongroom.vault.masterkeys import MasterKeyService

    return MasterKeyService(core.db, core.keys, core.audit, core.key_rotation)


@overload
def resolve(value: Awaitable[T]) -> T: ...
@overload
def resolve(value: T) -> T: ...
def resolve(value: Awaitable[T] | T) -> T:
    """Return ``value``, awaited first if it is awaitable (service methods that call exchanges may be async)."""
    if inspect.isawaitable(value):
        async def wait() -> T:
            return await value

        return asyncio.run(wait())
    return value


def every(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Return all items of a paginated service call ``fetch(cursor)``."""
    items: list[T] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        items.extend(page.items)
        if not page.next_cursor:
            return items
        cursor = page.next_cursor


def user_id(core: Core, username: str) -> int:
    """Return the id of user ``username``. Raises NotFound."""
    return core.users.by_username(OPERATOR, username).id


def confirm(question: str, yes: bool) -> None:
    """Go on if ``yes``, or if the human at the terminal says so; refuse without a terminal."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question.rstrip('?')}: not confirmed (pass --yes when not at a terminal)", 2)
    typer.confirm(question, abort=True, err=True)


def read_password(from_stdin: bool) -> str:
    """Return a new password: one line of stdin with ``--password-stdin``, else asked twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin: nothing on standard input", 2)
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password: pass --password-stdin and send it on standard input", 2)
    password: str = typer.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    return password


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr (``error: ...``) and return the exit status for it."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from strongroom.crypto.envelope import DecryptionError
    from strongroom.crypto.keyring import KeyringError
    from strongroom.datastore import DataError
    from strongroom.errors import DomainError
    from strongroom.settings import SettingsError

    code = 1
    if isinstance(exc, CliError):
        message, code = exc.message, exc.code
    elif isinstance(exc, SettingsError):
        message, code = exc.message, 2
    elif isinstance(exc, DataError):
        message = exc.message
    elif isinstance(exc, DomainError):
        message = exc.message
        if exc.fields:
            message += " (" + "; ".join(f"{name}: {why}" for name, why in exc.fields.items()) + ")"
    elif isinstance(exc, KeyringError):
        message = f"master key: {exc}"
    elif isinstance(exc, DecryptionError):
        message = "stored data does not decrypt with this master key (is it the server's key file?)"
    elif isinstance(exc, DBAPIError):
        # the driver's first line only: SQLAlchemy's full text repeats the statement's parameters
        first = str(exc.orig).strip().splitlines()
        message = f"database: {first[0] if first else type(exc.orig).__name__}"
    elif isinstance(exc, SQLAlchemyError):
        message = f"database: {type(exc).__name__}"
    elif isinstance(exc, OSError):
        message = f"{exc.strerror or type(exc).__name__}: {exc.filename}" if exc.filename else str(exc)
    else:
        if os.environ.get("STRONGROOM_LOG_LEVEL", "").strip().lower() == "debug":
            traceback.print_exception(exc, file=sys.stderr)
        message = f"unexpected {type(exc).__name__} (STRONGROOM_LOG_LEVEL=debug shows the traceback)"
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return code
