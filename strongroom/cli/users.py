"""``strongroom users``: list, create, delete, set-password, set-level, disable, enable."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.cli import shapes
from strongroom.cli.context import OPERATOR, confirm, every, fail, open_core, read_password
from strongroom.cli.output import record, said, table
from strongroom.enums import UsageLevel

app = typer.Typer(help="Users: list, create, delete, reset a password, set a usage level, disable, enable.",
                  no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="Read the password from the first line of stdin (no prompt).")]
COLUMNS = [("id", "ID"), ("username", "USERNAME"), ("is_admin", "ADMIN"), ("usage_level", "LEVEL"),
           ("email", "EMAIL"), ("created_at", "CREATED"), ("disabled", "DISABLED")]


@app.command("list")
def users_list(as_json: Json = False) -> None:
    """List every user."""
    with open_core() as core:
        users = every(lambda cursor: core.users.list(OPERATOR, cursor=cursor, limit=200))
    table([shapes.user(u) for u in users], COLUMNS, as_json=as_json, empty="no users")


@app.command("create")
def users_create(
    name: Annotated[str | None, typer.Argument(metavar="USERNAME", help="Login name.", show_default=False)] = None,
    username: Annotated[str | None, typer.Option("--username", help="Login name (or give it as the argument).")] = None,
    password_stdin: PasswordStdin = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    usage_level: Annotated[UsageLevel, typer.Option(help="Usage level.")] = UsageLevel.BASIC,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    as_json: Json = False,
) -> None:
    """Create a user (the password is asked on a terminal, or read with --password-stdin).

    The password never comes from the command line, where other users could read it.
    """
    if name and username and name != username:
        fail("give the username once (as the argument or --username)", 2)
    login = name or username
    if not login:
        fail("missing the username (strongroom users create USERNAME)", 2)
    password = read_password(password_stdin)
    with open_core() as core:
        user = core.users.create(login, password, email=email, is_admin=admin, usage_level=usage_level.value,
                                 actor=OPERATOR)
    if as_json:
        record(shapes.user(user), as_json=True)
    else:
        said(f"created user {user.username} (id {user.id}{', admin' if admin else ''}, {user.usage_level})")


@app.command("delete")
def users_delete(username: Annotated[str, typer.Argument(help="Who to delete.")], yes: Yes = False,
                 as_json: Json = False) -> None:
    """Delete a user with everything they own: API keys, exchange accounts, sessions."""
    with open_core() as core:
        user = core.users.by_username(OPERATOR, username)
        confirm(f"Delete user {user.username} (id {user.id}) with all their keys and accounts?", yes)
        core.users.delete(OPERATOR, user.id)
    if as_json:
        record({**shapes.user(user), "deleted": True}, as_json=True)
    else:
        said(f"deleted user {user.username} (id {user.id})")


@app.command("set-password")
def users_set_password(username: Annotated[str, typer.Argument(help="Whose password.")],
                       password_stdin: PasswordStdin = False, as_json: Json = False) -> None:
    """Set a new password (also the way back in after losing the admin's) and end the user's sessions."""
    password = read_password(password_stdin)
    with open_core() as core:
        user = core.users.by_username(OPERATOR, username)
        user = core.users.set_password(OPERATOR, user.id, password)
    if as_json:
        record(shapes.user(user), as_json=True)
    else:
        said(f"set a new password for {user.username}; their sessions were ended")


@app.command("set-level")
def users_set_level(username: Annotated[str, typer.Argument(help="Whose level.")],
                    level: Annotated[UsageLevel, typer.Argument(help="The new usage level.")],
                    as_json: Json = False) -> None:
    """Set a user's usage level (Kalshi lets premier and market_maker upload their own public keys)."""
    with open_core() as core:
        user = core.users.by_username(OPERATOR, username)
        user = core.users.set_usage_level(OPERATOR, user.id, level.value)
    if as_json:
        record(shapes.user(user), as_json=True)
    else:
        said(f"{user.username} is now {user.usage_level}")


def _set_disabled(username: str, disabled: bool, as_json: bool) -> None:
    with open_core() as core:
        user = core.users.by_username(OPERATOR, username)
        user = core.users.set_disabled(OPERATOR, user.id, disabled)
    if as_json:
        record(shapes.user(user), as_json=True)
    else:
        said(f"{user.username} is {'disabled' if disabled else 'enabled'}")


@app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="Whom to disable.")], as_json: Json = False) -> None:
    """Disable a user: no sign-in, and every key, session and refresh token of theirs is refused (within
    a second on running servers) until enabled again. Nothing is deleted or revoked."""
    _set_disabled(username, True, as_json)


@app.command("enable")
def users_enable(username: Annotated[str, typer.Argument(help="Whom to enable.")], as_json: Json = False) -> None:
    """Enable a disabled user: their keys, sessions and refresh tokens work again."""
    _set_disabled(username, False, as_json)
