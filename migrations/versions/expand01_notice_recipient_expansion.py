"""Notices write their recipients a chunk of subscribers at a time: whether some are left, and how far.

Revision ID: expand01
Revises: worker01
"""

import sqlalchemy as sa
from alembic import op

revision = "expand01"
down_revision = "worker01"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("is_expanding", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("recipients_through", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_notices_expanding", "notices", ["id"], postgresql_where=sa.text("is_expanding"),
                    sqlite_where=sa.text("is_expanding"))


def downgrade():
    op.drop_index("ix_notices_expanding", table_name="notices")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("recipients_through")
        batch.drop_column("is_expanding")
