"""SQLite: AUTOINCREMENT on every table with an integer id, so that an id is never used twice (as
PostgreSQL's sequences never reuse one); nothing to do on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

"""
from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Without AUTOINCREMENT, SQLite gives a new row the largest id in use plus one: delete the newest key
# (or account, credential, ...) and the next one gets its id, so a client holding the old id (TradrAPI
# and 3Commas name keys and accounts by number) would reach the new row.
TABLES = ('users', 'sessions', 'exchange_accounts', 'exchange_credentials', 'api_keys', 'audit_events',
          'key_usage', 'balance_snapshots')


def _recreate(autoincrement: bool) -> None:
    """SQLite: copy each table into one declared with (or without) AUTOINCREMENT: same columns, rows and
    ids, indexes and constraints (the environment turns foreign keys off meanwhile: see env.py)."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    """Recreate the tables with AUTOINCREMENT on SQLite (their rows keep their ids); a no-op on PostgreSQL."""
    _recreate(True)


def downgrade() -> None:
    """Recreate the tables without AUTOINCREMENT on SQLite; a no-op on PostgreSQL."""
    _recreate(False)
