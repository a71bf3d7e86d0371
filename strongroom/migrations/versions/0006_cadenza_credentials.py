"""users.public_id (stable UUIDs: Cadenza's userId), exchange_credentials (stored exchange keys) and
account_credentials (which credential an account was connected with)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

"""
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add users.public_id in place (every existing user gets a fresh UUID) and the two new tables."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    # In place on both databases, never a batch "copy and move" of users: dropping the old table
    # would cascade to every row that references a user. SQLite can only add a NOT NULL column with
    # a default; the placeholder is replaced below, and the unique index refuses a second one.
    if sqlite:
        op.add_column('users', sa.Column('public_id', sa.Uuid(), nullable=False, server_default=''))
    else:
        op.add_column('users', sa.Column('public_id', sa.Uuid(), nullable=True))
    users = sa.table('users', sa.column('id', sa.Integer()), sa.column('public_id', sa.Uuid()))
    for (user_id,) in bind.execute(sa.select(users.c.id)).all():
        bind.execute(users.update().where(users.c.id == user_id).values(public_id=uuid.uuid4()))
    if not sqlite:
        op.alter_column('users', 'public_id', existing_type=sa.Uuid(), nullable=False)
    op.create_index('ix_users_public_id', 'users', ['public_id'], unique=True)

    op.create_table(
        'exchange_credentials',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('exchange', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=True),
        sa.Column('nickname', sa.String(length=100), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('nonce', sa.LargeBinary(), nullable=False),
        sa.Column('wrapped_dek', sa.LargeBinary(), nullable=False),
        sa.Column('kek_version', sa.Integer(), nullable=False),
        sa.Column('key_fingerprint', sa.String(length=64), nullable=False),
        sa.Column('key_hint', sa.String(length=32), nullable=False),
        sa.Column('validated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('validation_result', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
    )
    op.create_index('ix_exchange_credentials_user_id', 'exchange_credentials', ['user_id'])
    op.create_index('ix_exchange_credentials_kek_version', 'exchange_credentials', ['kek_version'])
    op.create_index('ix_exchange_credentials_key_fingerprint', 'exchange_credentials', ['key_fingerprint'])

    op.create_table(
        'account_credentials',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('credential_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['exchange_accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['credential_id'], ['exchange_credentials.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id'),
    )
    op.create_index('ix_account_credentials_credential_id', 'account_credentials', ['credential_id'])


def downgrade() -> None:
    """Drop the two tables and users.public_id (in place)."""
    op.drop_index('ix_account_credentials_credential_id', table_name='account_credentials')
    op.drop_table('account_credentials')
    op.drop_index('ix_exchange_credentials_key_fingerprint', table_name='exchange_credentials')
    op.drop_index('ix_exchange_credentials_kek_version', table_name='exchange_credentials')
    op.drop_index('ix_exchange_credentials_user_id', table_name='exchange_credentials')
    op.drop_table('exchange_credentials')
    op.drop_index('ix_users_public_id', table_name='users')
    op.drop_column('users', 'public_id')
