"""Forced interleavings of a read with another connection's commit (torn reads).

A read that composes one answer from several SELECTs sees, under PostgreSQL's READ COMMITTED (and SQLite's
autocommit reads), whatever commits between them. ``commit_after`` runs a write after a given statement of
the reader's engine, so a test of every position proves the answer is one state wherever the write lands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def commit_after(engine: Any, after: int, write: Callable[[], object]) -> Iterator[list[str]]:
    """Within the block, run ``write`` (another core's: its own connection, committed) right after the
    reader ``engine``'s statement number ``after`` (from 0) has executed. Yields the statements seen. A read
    of fewer statements (one that was fixed) gets the write after it, on leaving the block, so the test's
    checks see the same database either way."""
    seen: list[str] = []

    def interleave(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)
        if len(seen) == after + 1:
            write()

    event.listen(engine, "after_cursor_execute", interleave)
    try:
        yield seen
    finally:
        event.remove(engine, "after_cursor_execute", interleave)
    if len(seen) <= after:
        write()
