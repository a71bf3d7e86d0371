"""``strongroom audit tail``: the latest audit events, and new ones as they come with ``--follow``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from strongroom.cli import shapes
from strongroom.cli.context import OPERATOR, open_core
from strongroom.cli.output import emit_json_line, is_terminal, table, text

app = typer.Typer(help="The audit log.", no_args_is_help=True)

COLUMNS = [("id", "ID"), ("at", "AT"), ("action", "ACTION"), ("outcome", "OUTCOME"), ("actor_user_id", "USER"),
           ("actor_key_id", "KEY"), ("target", "TARGET"), ("client_ip", "CLIENT"), ("details", "DETAILS")]


@app.command("tail")
def audit_tail(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many of the latest events to show.")] = 20,
    action: Annotated[str | None, typer.Option(help="Only this action (e.g. api_key.create, auth.sign_in).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C stops).")] = False,
    interval: Annotated[float, typer.Option(min=0.05, max=60, hidden=True, help="Seconds between polls.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON: an array; with --follow one object per line.")] = False,
) -> None:
    """Print the latest audit events, oldest first; --follow keeps printing new ones."""
    with open_core() as core:
        latest = list(reversed(core.audit.list(OPERATOR, limit=limit, action=action).items))
        if not follow:
            table([shapes.event(e) for e in latest], COLUMNS, as_json=as_json, empty="no audit events")
            return
        last = latest[-1].id if latest else 0
        if not latest:  # start from the newest event, whatever its action
            newest = core.audit.list(OPERATOR, limit=1).items
            last = newest[0].id if newest else 0
        try:
            pending = latest
            while True:
                for event in pending:
                    row = shapes.event(event)
                    if as_json:
                        emit_json_line(row)
                    else:
                        line = "\t".join(text(row.get(key)) for key, _ in COLUMNS)
                        typer.echo(line.replace("\t", "  ") if is_terminal() else line)
                    last = event.id
                time.sleep(interval if not pending else 0)
                pending = core.audit.after(OPERATOR, last, action=action)
        except KeyboardInterrupt:
            return
