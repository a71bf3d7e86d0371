"""key_usage: verifications per key, hour and outcome

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table (the unique constraint also indexes lookups by key and hour)."""
    op.create_table(
        'key_usage',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['key_id'], ['api_keys.key_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key_id', 'hour', 'outcome', name='uq_key_usage_key_hour_outcome'),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table('key_usage')
