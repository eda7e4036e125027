"""message store, per-delivery values, date-moved notices

Revision ID: proof01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:10:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = "proof01"
down_revision = "subscr01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "message_bodies",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_message_bodies")),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("moved_from_at", registry.models.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("moved_to_at", registry.models.types.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("substitutions", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_deliveries_message_sha256_message_bodies"),
                                    "message_bodies", ["message_sha256"], ["sha256"])


def downgrade():
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_deliveries_message_sha256_message_bodies"), type_="foreignkey")
        batch_op.drop_column("headers")
        batch_op.drop_column("substitutions")
        batch_op.drop_column("message_sha256")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_column("moved_to_at")
        batch_op.drop_column("moved_from_at")
        batch_op.drop_column("reason")
    op.drop_table("message_bodies")
