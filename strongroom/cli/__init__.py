"""The ``strongroom`` command: serve, migrate, run jobs, and manage users, keys, accounts, jobs, webhooks, the
audit log and the master key. One module per command group; output conventions in ``output``.

Every error, whatever raised it, ends as one line on stderr (``error: ...``) and a non-zero
exit status: 2 for usage and settings errors, 1 for everything else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from strongroom import __version__
from strongroom.cli import accounts, audit, backup, jobs, keys, masterkey, orders, server, users, webhooks
from strongroom.cli.context import report
from strongroom.logs import quiet_logging


class Strongroom(TyperGroup):
    """The root command: runs the command line and turns every failure into one line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
            code = code if isinstance(code, int) else 0
        except TyperException as exc:  # usage errors and the like (Typer's own click)
            code = exc.exit_code
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":
                pass  # a bare command group: building this error printed the group's help
            else:
                where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        except Exception as exc:  # noqa: BLE001 - the one place every other failure becomes one line
            code = report(exc)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(cls=Strongroom, help="Strongroom: exchange-account vault and platform API keys.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"strongroom {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Strongroom: exchange-account vault and platform API keys.

    Commands read the same STRONGROOM_* settings as the server (data directory, database URL,
    master key) and refuse to run where there is no data, rather than create any.
    """
    quiet_logging()


server.register(app)
app.add_typer(users.app, name="users")
app.add_typer(keys.app, name="keys")
accounts.app.add_typer(orders.policy_app, name="policy")
app.add_typer(accounts.app, name="accounts")
app.add_typer(orders.app, name="orders")
app.add_typer(audit.app, name="audit")
app.add_typer(masterkey.app, name="master-key")
app.add_typer(webhooks.app, name="webhooks")
backup.register(app)
jobs.register(app)
