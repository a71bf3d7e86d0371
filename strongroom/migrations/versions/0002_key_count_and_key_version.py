"""users.api_key_count (the per-user key cap without count(*)) and api_keys.version (optimistic concurrency)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add both columns; count every user's existing keys into the new counter."""
    # plain ALTER TABLE on both databases (SQLite >= 3.35 adds and drops columns in place): a batch
    # "copy and move" of users would drop the old table, and with foreign keys on, cascade to every key
    op.add_column('users', sa.Column('api_key_count', sa.Integer(), server_default='0', nullable=False))
    op.add_column('api_keys', sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    op.execute(
        "UPDATE users SET api_key_count = (SELECT count(*) FROM api_keys WHERE api_keys.user_id = users.id)"
    )


def downgrade() -> None:
    """Drop both columns."""
    op.drop_column('api_keys', 'version')
    op.drop_column('users', 'api_key_count')
