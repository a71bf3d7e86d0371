"""users.disabled (an operator's switch) and job_leases (once-per-deployment background jobs)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add users.disabled in place (false for every existing user) and the job_leases table."""
    # in place on both databases (SQLite adds a NOT NULL column with a default): never a copy of users,
    # whose rows others cascade from
    op.add_column('users', sa.Column('disabled', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'job_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    """Drop job_leases and users.disabled (in place: no copy of users)."""
    op.drop_table('job_leases')
    op.drop_column('users', 'disabled')
