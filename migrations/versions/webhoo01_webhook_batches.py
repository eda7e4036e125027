"""webhook batches: the Event Webhook stores posts for the worker; events keep what they said

Revision ID: webhoo01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:00:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = 'webhoo01'
down_revision = 'a19f09fc09ce'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('webhook_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('claimed_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('applied_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_batches'))
    )
    with op.batch_alter_table('webhook_batches', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_batches_pending', ['id'], unique=False, postgresql_where=sa.text('applied_at IS NULL'), sqlite_where=sa.text('applied_at IS NULL'))

    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('delivery_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_webhook_events_delivery_id'), ['delivery_id'], unique=False)


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_delivery_id'))
        batch_op.drop_column('message_id')
        batch_op.drop_column('delivery_id')
        batch_op.drop_column('event')

    with op.batch_alter_table('webhook_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_batches_pending', postgresql_where=sa.text('applied_at IS NULL'), sqlite_where=sa.text('applied_at IS NULL'))

    op.drop_table('webhook_batches')
