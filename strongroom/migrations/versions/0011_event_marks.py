"""event marks (an event written once per subject) and an account's balance baseline

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add event_marks (new table) and exchange_accounts.balance_baseline_usd (nullable: no copy)."""
    op.create_table(
        'event_marks',
        sa.Column('mark', sa.String(length=200), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('mark'),
    )
    with op.batch_alter_table('exchange_accounts') as batch:
        batch.add_column(sa.Column('balance_baseline_usd', sa.String(length=100), nullable=True))


def downgrade() -> None:
    """Drop both (the marks are lost: notices already sent may be sent again)."""
    with op.batch_alter_table('exchange_accounts') as batch:
        batch.drop_column('balance_baseline_usd')
    op.drop_table('event_marks')
