"""change set revision: the version check that makes every transition race-safe

Revision ID: orderi01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "orderi01"
down_revision = "proof01"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("change_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))


def downgrade():
    with op.batch_alter_table("change_sets", schema=None) as batch_op:
        batch_op.drop_column("revision")
