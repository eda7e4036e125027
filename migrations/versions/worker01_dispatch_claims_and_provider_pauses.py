"""dispatch claims with a heartbeat, provider pauses, unknown outcomes per delivery, delayed notices

Revision ID: worker01
Revises: a19f09fc09ce
Create Date: 2026-12-01 15:10:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = "worker01"
down_revision = "orderi01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dispatch_claims",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("claimed_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_dispatch_claims")),
    )
    op.create_table(
        "provider_pauses",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("until", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_pauses")),
    )
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("unknown_outcomes", sa.Integer(), server_default=sa.text("0"),
                                      nullable=False))
    with op.batch_alter_table("notices") as batch_op:
        batch_op.add_column(sa.Column("delayed_at", registry.models.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table("notices") as batch_op:
        batch_op.drop_column("delayed_at")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("unknown_outcomes")
    op.drop_table("provider_pauses")
    op.drop_table("dispatch_claims")
