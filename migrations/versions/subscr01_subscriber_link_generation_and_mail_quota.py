"""subscriber link generation and daily mail quota

Revision ID: subscr01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'subscr01'
down_revision = "auth01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'mail_quotas',
        sa.Column('address_hash', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('address_hash', 'day', name=op.f('pk_mail_quotas')),
    )
    with op.batch_alter_table('mail_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_quotas_day'), ['day'], unique=False)

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='1', nullable=False))
    # Links mailed before a subscription was deleted must not open it again after a re-subscription.
    op.execute("UPDATE subscribers SET generation = 2 WHERE status = 'deleted'")


def downgrade():
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('generation')

    with op.batch_alter_table('mail_quotas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_quotas_day'))

    op.drop_table('mail_quotas')
