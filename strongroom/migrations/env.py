"""Alembic environment: the URL comes from the caller (``strongroom db upgrade``) or settings."""

from alembic import context
from sqlalchemy import Connection

from strongroom import models  # noqa: F401  (registers tables)
from strongroom.db import Base, make_engine
from strongroom.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _check_foreign_keys(connection: Connection) -> None:
    """SQLite: refuse to commit a migration that left a row pointing at nothing (see run_migrations)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left {len(broken)} rows with a broken foreign key (first in {broken[0][0]})")


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite's documented way to change a table's schema: foreign keys off while a batch
            # migration copies a table, drops the old one and renames the copy (with them on, dropping
            # ``users`` would cascade to every row that references a user), checked before commit.
            # The pragma is a no-op inside a transaction: set it first, outside one.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
    engine.dispose()


run_migrations()
