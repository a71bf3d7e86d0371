"""``strongroom accounts``: list, show, disconnect and revalidate exchange accounts of any user."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.cli import shapes
from strongroom.cli.context import OPERATOR, confirm, every, open_core, resolve, user_id
from strongroom.cli.output import record, said, table
from strongroom.enums import AccountStatus

app = typer.Typer(help="Exchange accounts of any user: list, show, disconnect, revalidate.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
AccountId = Annotated[int, typer.Argument(help="The account id.")]
COLUMNS = [("id", "ID"), ("username", "USER"), ("exchange", "EXCHANGE"), ("name", "NAME"),
           ("account_type", "TYPE"), ("status", "STATUS"), ("key_hint", "KEY"), ("validated_at", "VALIDATED")]


@app.command("list")
def accounts_list(user: Annotated[str | None, typer.Option(help="Only this user's accounts.")] = None,
                  status: Annotated[AccountStatus | None, typer.Option(help="Only accounts in this status.")] = None,
                  as_json: Json = False) -> None:
    """List exchange accounts (never credentials): every user's, or one user's."""
    with open_core() as core:
        owner = user_id(core, user) if user else None
        wanted = status.value if status else None
        accounts = every(lambda cursor: core.accounts.list_any(OPERATOR, user_id=owner, status=wanted,
                                                               cursor=cursor, limit=200))
        names = core.users.usernames(OPERATOR, {a.user_id for a in accounts})
    table([shapes.account(a, names) for a in accounts], COLUMNS, as_json=as_json, empty="no exchange accounts")


@app.command("show")
def accounts_show(account_id: AccountId, as_json: Json = False) -> None:
    """Show one account (never its credentials)."""
    with open_core() as core:
        account = core.accounts.get(OPERATOR, account_id)
        names = core.users.usernames(OPERATOR, [account.user_id])
    record(shapes.account(account, names), as_json=as_json)


@app.command("disconnect")
def accounts_disconnect(account_id: AccountId, yes: Yes = False, as_json: Json = False) -> None:
    """Disconnect an account: its credentials are destroyed (the row stays for history)."""
    with open_core() as core:
        account = core.accounts.get(OPERATOR, account_id)
        confirm(f"Disconnect account {account.id} ({account.exchange} {account.name!r})? "
                "Its credentials are destroyed.", yes)
        account = core.accounts.disconnect(OPERATOR, account_id)
        names = core.users.usernames(OPERATOR, [account.user_id])
    if as_json:
        record(shapes.account(account, names), as_json=True)
    else:
        said(f"disconnected account {account.id} ({account.exchange} {account.name}); its credentials were destroyed")


@app.command("revalidate")
def accounts_revalidate(account_id: AccountId, as_json: Json = False) -> None:
    """Check an account's stored credentials with its exchange again; rejected ones mark it invalid."""
    with open_core() as core:
        account = resolve(core.accounts.revalidate(OPERATOR, account_id))
        names = core.users.usernames(OPERATOR, [account.user_id])
    if as_json:
        record(shapes.account(account, names), as_json=True)
    else:
        said(f"account {account.id} ({account.exchange} {account.name}): {account.status} "
             f"({account.validation_result})")
