"""webhook_endpoints.all_users: an admin's endpoint that receives every user's events

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add webhook_endpoints.all_users (false for every existing endpoint) and its index (in place: no copy)."""
    op.add_column('webhook_endpoints', sa.Column('all_users', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(op.f('ix_webhook_endpoints_all_users'), 'webhook_endpoints', ['all_users'], unique=False)


def downgrade() -> None:
    """Drop webhook_endpoints.all_users and its index."""
    op.drop_index(op.f('ix_webhook_endpoints_all_users'), table_name='webhook_endpoints')
    op.drop_column('webhook_endpoints', 'all_users')
