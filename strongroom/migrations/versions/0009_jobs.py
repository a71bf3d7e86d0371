"""jobs and schedules: the durable job runner (strongroom.jobs.queue)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the jobs and schedules tables (new tables only: nothing existing is copied)."""
    op.create_table(
        'jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=100), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('max_attempts', sa.Integer(), nullable=False),
        sa.Column('run_at', sa.Float(), nullable=False),
        sa.Column('lease_owner', sa.String(length=200), nullable=True),
        sa.Column('lease_expires_at', sa.Float(), nullable=True),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_jobs_status_run_at', 'jobs', ['status', 'run_at'])
    op.create_index('ix_jobs_status_lease', 'jobs', ['status', 'lease_expires_at'])
    op.create_table(
        'schedules',
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=100), nullable=False),
        sa.Column('interval_seconds', sa.Float(), nullable=False),
        sa.Column('next_run_at', sa.Float(), nullable=False),
        sa.Column('last_fired_at', sa.Float(), nullable=True),
        sa.Column('last_fired_by', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    """Drop schedules and jobs (queued jobs are lost with them)."""
    op.drop_table('schedules')
    op.drop_index('ix_jobs_status_lease', table_name='jobs')
    op.drop_index('ix_jobs_status_run_at', table_name='jobs')
    op.drop_table('jobs')
