"""How every command prints. One convention, applied everywhere:

- ``--json``: JSON on stdout with stable snake_case keys; a list is an array, a single thing an
  object, a stream (``audit tail --follow``) one object per line. Times are ISO 8601 UTC
  (``2026-01-02T03:04:05Z``). Secrets never appear, except the one-time secret of
  ``keys create`` / ``keys roll``, under the key ``secret``.
- Otherwise, lists are tables and single things are ``field value`` pairs: drawn with rich on a
  terminal, and as plain tab-separated lines (no header) when stdout is not a terminal, so
  ``cut``/``awk`` work. A command that only acts prints one sentence saying what it did.
- Notes for the human (a secret shown once, progress) go to stderr; errors are one line on
  stderr, ``error: ...``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

Row = Mapping[str, Any]


def iso(value: datetime | None) -> str | None:
    """Return ``value`` as ISO 8601 UTC with a ``Z`` (as the /v1 API writes times), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_terminal() -> bool:
    return sys.stdout.isatty()


def text(value: Any) -> str:
    """Return one field as plain text: empty for None, lists comma-joined, objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _cell(value: Any) -> str:
    return text(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def emit_json_line(data: Any) -> None:
    """Print ``data`` as one line of JSON (streams)."""
    typer.echo(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def table(rows: Sequence[Row], columns: Sequence[tuple[str, str]], *, as_json: bool = False,
          empty: str = "nothing to show") -> None:
    """Print ``rows`` (dicts): JSON array, a rich table on a terminal, else tab-separated lines.

    ``columns`` are ``(key, header)`` pairs for the text forms; JSON has every key of each row.
    """
    if as_json:
        emit_json(list(rows))
        return
    if not is_terminal():
        for row in rows:
            typer.echo("\t".join(_cell(row.get(key)) for key, _ in columns))
        return
    if not rows:
        note(empty)
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(box=None, header_style="bold", pad_edge=False)
    for _, header in columns:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(text(row.get(key)) for key, _ in columns))
    Console().print(grid)


def record(data: Row, *, as_json: bool = False, fields: Iterable[str] | None = None) -> None:
    """Print one thing: a JSON object, ``field value`` pairs on a terminal, else ``field<TAB>value`` lines."""
    if as_json:
        emit_json(dict(data))
        return
    keys = list(fields) if fields is not None else list(data)
    if not is_terminal():
        for key in keys:
            typer.echo(f"{key}\t{_cell(data.get(key))}")
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in keys:
        grid.add_row(key, text(data.get(key)))
    Console().print(grid)


def said(message: str) -> None:
    """Print the one sentence an acting command ends with (stdout)."""
    typer.echo(message)


def note(message: str) -> None:
    """Print a note for the human on stderr (never data, never a secret)."""
    typer.echo(message, err=True)
