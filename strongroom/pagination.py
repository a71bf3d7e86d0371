"""Keyset (cursor) pagination over an integer id column."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Select, func, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from strongroom.errors import ValidationFailed


class HasId(Protocol):
    """A mapped row with an integer primary key ``id``."""

    @property
    def id(self) -> int: ...


T = TypeVar("T")
R = TypeVar("R", bound=HasId)
MAX_LIMIT = 200
# Ids are 32-bit INTEGER columns on PostgreSQL (and SQLite cannot bind ints over 64 bits): a client-given
# id outside this range is refused before it reaches SQL, where it would raise DataError/OverflowError.
MAX_ID = 2**31 - 1


def valid_id(value: object) -> bool:
    """Return True if ``value`` can be the id of a row (a positive 32-bit int)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the id in ``cursor``; raise ValidationFailed if it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = text.split(":", 1)
        if kind != "id":
            raise ValueError
        last = int(value)
        if not 0 <= last <= MAX_ID:
            raise ValueError
        return last
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("invalid cursor", fields={"cursor": "invalid cursor"}) from None


def paginate(session: Session, query: Select[R], id_column: InstrumentedAttribute[int], cursor: str | None, limit: int,
             *, descending: bool = False, keep: Callable[[R], bool] | None = None) -> Page[R]:
    """Return one page of ``query`` ordered by ``id_column`` after ``cursor``.

    ``keep``: only the rows it keeps count (a condition SQL cannot say); the query is then read without a
    LIMIT, so it must be bounded (a user's keys), but in one statement: the rows kept are the rows decided on.
    Raises ValidationFailed for a limit outside 1..MAX_LIMIT or a cursor that is not one of ours.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", fields={"limit": "out of range"})
    if cursor:
        last = decode_cursor(cursor)
        query = query.where(id_column < last if descending else id_column > last)
    query = query.order_by(id_column.desc() if descending else id_column.asc())
    if keep is None:
        rows = list(session.scalars(query.limit(limit + 1)))
    else:
        rows = [row for row in session.scalars(query) if keep(row)][:limit + 1]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)


# Offset pages (surfaces whose clients page by offset and want a total, e.g. Cadenza).
MAX_OFFSET_LIMIT = 1000


@dataclass
class OffsetPage(Generic[T]):
    """One page of an offset-paged listing: its rows, where it started, its size limit and the total count."""

    items: list[T]
    offset: int
    limit: int
    total: int

    @property
    def has_next(self) -> bool:
        """Return True if rows follow this page."""
        return self.offset + len(self.items) < self.total


def paginate_offset(session: Session, query: Select[T], id_column: InstrumentedAttribute[int], offset: int,
                    limit: int, *, descending: bool = False) -> OffsetPage[T]:
    """Return rows ``offset``..``offset+limit`` of ``query`` (a SELECT of one mapped entity) ordered by
    ``id_column``, with the total count.

    One statement (the count outer-joined to the page), so one snapshot: counted in one statement and read in
    the next, a row changing meanwhile (under PostgreSQL's READ COMMITTED, or SQLite's autocommit reads) gave
    a total that did not match the items. Raises ValidationFailed (naming ``limit`` or ``offset``) for a
    limit outside 1..MAX_OFFSET_LIMIT or a negative offset.
    """
    if not 1 <= limit <= MAX_OFFSET_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_OFFSET_LIMIT}",
                               fields={"limit": f"between 1 and {MAX_OFFSET_LIMIT}"})
    if not 0 <= offset <= MAX_ID:
        raise ValidationFailed("offset must not be negative", fields={"offset": "0 or more"})
    entity = query.column_descriptions[0]["entity"]
    counted = select(func.count().label("total")).select_from(query.order_by(None).subquery()).subquery()
    page = query.order_by(id_column.desc() if descending else id_column.asc()).offset(offset).limit(limit).subquery()
    row = aliased(entity, page)
    key = page.c[id_column.key]
    # the count's one row, outer-joined to the page's rows: that row (items None) when the page is empty
    found = session.execute(select(counted.c.total, row).select_from(counted).outerjoin(page, true())
                            .order_by(key.desc() if descending else key.asc())).all()
    total = int(found[0][0]) if found else 0
    return OffsetPage([item for _, item in found if item is not None], offset, limit, total)
