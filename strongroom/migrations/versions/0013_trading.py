"""trading: orders and risk policies (strongroom.trading, issue 19)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the orders and trading_policies tables (new tables only: nothing existing is copied)."""
    op.create_table(
        'orders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=True),
        sa.Column('client_order_id', sa.String(length=64), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('exchange_order_id', sa.String(length=100), nullable=True),
        sa.Column('symbol', sa.String(length=64), nullable=False),
        sa.Column('side', sa.String(length=8), nullable=False),
        sa.Column('type', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.String(length=100), nullable=False),
        sa.Column('price', sa.String(length=100), nullable=True),
        sa.Column('time_in_force', sa.String(length=8), nullable=True),
        sa.Column('post_only', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('filled', sa.String(length=100), nullable=False),
        sa.Column('average_price', sa.String(length=100), nullable=True),
        sa.Column('fees', sa.JSON(), nullable=False),
        sa.Column('error_code', sa.String(length=40), nullable=True),
        sa.Column('created_epoch', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['exchange_accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('account_id', 'client_order_id', name='uq_orders_account_client_order_id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_orders_account_status_id', 'orders', ['account_id', 'status', 'id'])
    op.create_index('ix_orders_account_created', 'orders', ['account_id', 'created_epoch'])
    op.create_table(
        'trading_policies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=True),
        sa.Column('key_id', sa.String(length=64), nullable=True),
        sa.Column('allowed_symbols', sa.JSON(), nullable=True),
        sa.Column('max_notional_usd', sa.String(length=100), nullable=True),
        sa.Column('max_open_orders', sa.Integer(), nullable=True),
        sa.Column('max_orders_per_minute', sa.Integer(), nullable=True),
        sa.Column('price_band_percent', sa.String(length=100), nullable=True),
        sa.Column('allow_market_orders', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('kill_switch', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('revision', sa.Integer(), server_default='0', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['exchange_accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['key_id'], ['api_keys.key_id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('subject'),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop the trading tables (their orders and policies are lost with them)."""
    op.drop_table('trading_policies')
    op.drop_index('ix_orders_account_created', table_name='orders')
    op.drop_index('ix_orders_account_status_id', table_name='orders')
    op.drop_table('orders')
