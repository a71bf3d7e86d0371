"""``strongroom accounts``: list, show, disable, enable, disconnect and revalidate exchange accounts of any user."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

import typer

from strongroom.accounts import AccountQuery, ByCursor
from strongroom.cli import shapes
from strongroom.cli.context import OPERATOR, confirm, every, open_core, resolve, user_id
from strongroom.cli.output import emit_json, iso, note, record, said, table
from strongroom.enums import AccountStatus

app = typer.Typer(help="Exchange accounts of any user: list, show, balances, disable, enable, disconnect, "
                  "revalidate.",
                  no_args_is_help=True)

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
        query = AccountQuery(everyone=True, user_id=owner, statuses=[wanted] if wanted else None)
        accounts = every(lambda cursor: resolve(core.accounts.find(OPERATOR, query, ByCursor(cursor, 200))))
        names = core.users.usernames(OPERATOR, {a.user_id for a in accounts})
    table([shapes.account(a, names) for a in accounts], COLUMNS, as_json=as_json, empty="no exchange accounts")


@app.command("show")
def accounts_show(account_id: AccountId, as_json: Json = False) -> None:
    """Show one account (never its credentials)."""
    with open_core() as core:
        account = resolve(core.accounts.get(OPERATOR, account_id))
        names = core.users.usernames(OPERATOR, [account.user_id])
    record(shapes.account(account, names), as_json=as_json)


def _set_enabled(account_id: int, enabled: bool, as_json: bool) -> None:
    with open_core() as core:
        account = resolve(core.accounts.set_enabled(OPERATOR, account_id, enabled))
        names = core.users.usernames(OPERATOR, [account.user_id])
    if as_json:
        record(shapes.account(account, names), as_json=True)
    else:
        said(f"account {account.id} ({account.exchange} {account.name!r}) is {account.status}")


@app.command("disable")
def accounts_disable(account_id: AccountId, as_json: Json = False) -> None:
    """Disable a live account: it is not used (no balances, no refresh) until enabled; credentials are kept."""
    _set_enabled(account_id, False, as_json)


@app.command("enable")
def accounts_enable(account_id: AccountId, as_json: Json = False) -> None:
    """Enable a disabled account (it takes the status of its last check: active, unverified or invalid)."""
    _set_enabled(account_id, True, as_json)


@app.command("disconnect")
def accounts_disconnect(account_id: AccountId, yes: Yes = False, as_json: Json = False) -> None:
    """Disconnect an account: its credentials are destroyed (the row stays for history)."""
    with open_core() as core:
        account = resolve(core.accounts.get(OPERATOR, account_id))
        confirm(f"Disconnect account {account.id} ({account.exchange} {account.name!r})? "
                "Its credentials are destroyed.", yes)
        account = resolve(core.accounts.disconnect(OPERATOR, account_id))
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


BALANCE_COLUMNS = [("asset", "ASSET"), ("total", "TOTAL"), ("usd", "USD")]


@app.command("balances")
def accounts_balances(user: Annotated[str, typer.Option(help="Whose accounts.")],
                      refresh: Annotated[bool, typer.Option("--refresh", help="Load live from the exchanges "
                                                            "first (else the last snapshots).")] = False,
                      as_json: Json = False) -> None:
    """A user's balances across their live accounts: per asset the total and its USD value."""
    from strongroom.balances.valuation import render

    with open_core() as core:
        owner = user_id(core, user)
        if refresh:
            async def load() -> Any:
                try:
                    return await core.balances.refresh_portfolio(OPERATOR, user_id=owner)
                finally:
                    await core.gateway.aclose()

            portfolio = asyncio.run(load())
        else:
            portfolio = resolve(core.balances.portfolio(OPERATOR, user_id=owner))

    def money(value: Decimal | None) -> str | None:
        return None if value is None else render(value)

    assets = [{"asset": a.asset, "total": money(a.total), "usd": money(a.usd)} for a in portfolio.assets]
    if as_json:
        emit_json({"user": user, "total_usd": money(portfolio.total_usd), "total_btc": money(portfolio.total_btc),
                   "unpriced_assets": portfolio.unpriced_assets, "fetched_at": iso(portfolio.fetched_at),
                   "assets": assets,
                   "accounts": [{"id": t.account_id, "exchange": t.exchange, "name": t.name, "status": t.status,
                                 "total_usd": money(t.snapshot.total_usd) if t.snapshot else None,
                                 "fetched_at": iso(t.snapshot.fetched_at) if t.snapshot else None,
                                 "error": t.error} for t in portfolio.accounts]})
        return
    table(assets, BALANCE_COLUMNS, as_json=False, empty="no balances (no account loaded yet: try --refresh)")
    note(f"total {money(portfolio.total_usd)} USD, {money(portfolio.total_btc)} BTC"
         + (f"; {portfolio.unpriced_assets} asset(s) without a price" if portfolio.unpriced_assets else "")
         + "".join(f"; account {t.account_id}: {t.error}" for t in portfolio.accounts if t.error))
