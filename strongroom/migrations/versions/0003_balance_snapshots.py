"""balance_snapshots: every successful balance load of an exchange account, valued (issue 9)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table and its two indexes (latest/history by time, pruning by epoch second)."""
    op.create_table(
        'balance_snapshots',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('fetched_epoch', sa.BigInteger(), nullable=False),
        sa.Column('account_type', sa.String(length=16), nullable=False),
        sa.Column('total_usd', sa.String(length=100), nullable=False),
        sa.Column('total_btc', sa.String(length=100), nullable=False),
        sa.Column('unpriced_assets', sa.Integer(), nullable=False),
        sa.Column('assets', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['exchange_accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_balance_snapshots_account_fetched', 'balance_snapshots', ['account_id', 'fetched_at'])
    op.create_index('ix_balance_snapshots_account_epoch', 'balance_snapshots', ['account_id', 'fetched_epoch'])


def downgrade() -> None:
    """Drop the table (the snapshots are lost; accounts are untouched)."""
    op.drop_index('ix_balance_snapshots_account_epoch', table_name='balance_snapshots')
    op.drop_index('ix_balance_snapshots_account_fetched', table_name='balance_snapshots')
    op.drop_table('balance_snapshots')
