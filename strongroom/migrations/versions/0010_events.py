"""events: the outbox of what happened (strongroom.events)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the events table (new table only: nothing existing is copied)."""
    op.create_table(
        'events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=40), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('admin_only', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_events_user_id_id', 'events', ['user_id', 'id'])
    op.create_index('ix_events_type_id', 'events', ['type', 'id'])


def downgrade() -> None:
    """Drop the events table (its events are lost with it)."""
    op.drop_index('ix_events_type_id', table_name='events')
    op.drop_index('ix_events_user_id_id', table_name='events')
    op.drop_table('events')
