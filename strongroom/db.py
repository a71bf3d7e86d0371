"""Database engine and sessions (SQLAlchemy 2, sync).

Services use sync sessions; async routes call them through a worker thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, cast

from sqlalchemy import ColumnElement, CursorResult, Engine, Result, Table, create_engine, delete, event, select, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

P = ParamSpec("P")
T = TypeVar("T")


def retry_read_once(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a read-only method: if the database connection was lost during the call (a
    restarted server, a terminated backend), run it once more on a fresh connection.

    One retry, no backoff: the pool has already discarded the dead connection (and pre-pings the
    next), so a second failure means the database is really down and is answered as a 503. Too
    small a rule to take a retry library for; writes are never retried.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except DBAPIError as exc:
            if not (exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))):
                raise
            log.info("database connection lost during %s; retrying once", fn.__qualname__)
            return fn(*args, **kwargs)

    return wrapper


log = logging.getLogger("strongroom.db")


class Base(DeclarativeBase):
    """Every model: declared with ``__tablename__``, so each is mapped to a :class:`Table`."""

    if TYPE_CHECKING:  # DeclarativeBase types it as any FromClause; ours are all Tables (update(), insert())
        __table__: ClassVar[Table]


def delete_in_batches(db: Database, id_column: Any, older: ColumnElement[bool], batch: int = 5000) -> int:
    """Delete the rows of ``id_column``'s table matching ``older``, oldest id first, ``batch`` per transaction
    (no long lock, no huge transaction: the retention jobs); return how many were deleted."""
    table = id_column.table
    deleted = 0
    while True:
        with db.session() as session:
            ids = list(session.scalars(select(id_column).where(older).order_by(id_column).limit(batch)))
            if ids:
                deleted += rowcount(session.execute(delete(table).where(id_column.in_(ids))))
        if len(ids) < batch:
            return deleted


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """Return how many rows the UPDATE or DELETE that gave ``result`` matched.

    ``Session.execute`` is typed to return a plain :class:`Result`; for an UPDATE or DELETE without
    RETURNING it is a :class:`CursorResult`, which has the count.
    """
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC, with microseconds dropped."""
    return datetime.now(UTC).replace(microsecond=0)


def make_engine(url: str) -> Engine:
    """Return an engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """Owns the engine and hands out transactional sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self._factory() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
