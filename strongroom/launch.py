"""The ``strongroom`` command's entry point: ``strongroom serve`` starts without loading the command line.

The command line (:mod:`strongroom.cli`: Typer, Rich and every command group) costs a restarted server time
that serving does not need. ``serve`` with options as the command line takes them is started here through
:mod:`strongroom.serving`; anything else (every other command, ``serve --help``, an option this does not
take as it is, a value out of range) goes to the command line, which answers it, errors included.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import Any, NoReturn


class _NotPlain(Exception):
    """The arguments are not a plain ``serve``: the command line answers them."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _NotPlain(message)


def serve_options(args: Sequence[str]) -> dict[str, Any] | None:
    """Return the keyword arguments of :func:`strongroom.serving.serve` if ``args`` are ``serve`` and options as
    the command line takes them (``--host H``, ``--port N`` from 1 to 65535, ``--workers N`` from 1 to 64, each
    also as ``--name=value``, the last one given winning); None for anything else."""
    if not args or args[0] != "serve":
        return None
    parser = _Parser(prog="strongroom serve", add_help=False, allow_abbrev=False)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=1)
    try:
        options = parser.parse_args(args[1:])
    except _NotPlain:
        return None
    if (options.port is not None and not 1 <= options.port <= 65535) or not 1 <= options.workers <= 64:
        return None
    return {"host": options.host, "port": options.port, "workers": options.workers}


def main() -> None:
    """Run the ``strongroom`` command with ``sys.argv`` (exits with the command's status on failure)."""
    options = serve_options(sys.argv[1:])
    if options is None:
        from strongroom.cli import app

        app()
        return
    # no cyclic garbage collection while the server starts: it builds some 120,000 objects that live as long as
    # it does, and collecting as they come scanned them over and over (a fifth of a restart's CPU); serve()
    # freezes them out of the collector's reach and turns it back on before the first request
    gc.disable()
    from strongroom.logs import quiet_logging
    from strongroom.serving import ServeRefused, serve

    quiet_logging()  # as the command line does before every command
    try:
        serve(**options)
    except Exception as exc:  # noqa: BLE001 - reported as the command line reports every failure: one line
        from strongroom.cli.context import CliError, report

        sys.exit(report(CliError(exc.message, exc.code) if isinstance(exc, ServeRefused) else exc))
