"""auth hardening: sign-in failure counters, refusal windows, room for encrypted TOTP secrets

TOTP secrets stored before this revision stay readable as they are (plain base32) and are
written back encrypted the next time the account uses a code (services.accounts.check_totp):
encrypting them here would need the application's secret key inside the migration.

Revision ID: auth01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:01:51.156114

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = 'auth01'
down_revision = "webhoo01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_throttles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_sha256', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_throttles')),
    sa.UniqueConstraint('account_sha256', name=op.f('uq_login_throttles_account_sha256'))
    )
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttles_last_failure_at'), ['last_failure_at'], unique=False)

    op.create_table('refusal_windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('claimed_account', sa.String(length=80), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('window_start', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('first_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refusal_windows_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refusal_windows')),
    sa.UniqueConstraint('key_sha256', name=op.f('uq_refusal_windows_key_sha256'))
    )
    with op.batch_alter_table('refusal_windows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refusal_windows_closed_at'), ['closed_at'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('totp_secret',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=255),
               existing_nullable=True)


def downgrade():
    # Encrypted secrets do not fit 64 characters: reset two-factor of those accounts before downgrading.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('totp_secret',
               existing_type=sa.String(length=255),
               type_=sa.VARCHAR(length=64),
               existing_nullable=True)

    with op.batch_alter_table('refusal_windows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refusal_windows_closed_at'))

    op.drop_table('refusal_windows')
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttles_last_failure_at'))

    op.drop_table('login_throttles')
