"""objections and approvals of announced changes, their timeline and per-year reference numbers

Revision ID: object01
Revises: expand01
Create Date: 2026-12-01 19:00:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = "object01"
down_revision = "expand01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "objection_sequences",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_objection_sequences")),
    )
    op.create_table(
        "objections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_set_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("organisation", sa.String(length=300), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("grounds", sa.Text(), nullable=False),
        sa.Column("asks_alternative", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("confirm_token_hash", sa.String(length=64), nullable=True),
        sa.Column("confirm_expires_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["change_set_id"], ["change_sets.id"],
                                name=op.f("fk_objections_change_set_id_change_sets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objections")),
        sa.UniqueConstraint("confirm_token_hash", name=op.f("uq_objections_confirm_token_hash")),
        sa.UniqueConstraint("reference", name=op.f("uq_objections_reference")),
        sa.UniqueConstraint("year", "number", name=op.f("uq_objections_year")),
    )
    with op.batch_alter_table("objections") as batch_op:
        batch_op.create_index(batch_op.f("ix_objections_change_set_id"), ["change_set_id"], unique=False)
        batch_op.create_index("ix_objections_status", ["status"], unique=False)
    op.create_table(
        "objection_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("objection_id", sa.Integer(), nullable=False),
        sa.Column("at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_objection_events_actor_id_users")),
        sa.ForeignKeyConstraint(["objection_id"], ["objections.id"],
                                name=op.f("fk_objection_events_objection_id_objections")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection_events")),
    )
    with op.batch_alter_table("objection_events") as batch_op:
        batch_op.create_index(batch_op.f("ix_objection_events_objection_id"), ["objection_id"], unique=False)


def downgrade():
    with op.batch_alter_table("objection_events") as batch_op:
        batch_op.drop_index(batch_op.f("ix_objection_events_objection_id"))
    op.drop_table("objection_events")
    with op.batch_alter_table("objections") as batch_op:
        batch_op.drop_index("ix_objections_status")
        batch_op.drop_index(batch_op.f("ix_objections_change_set_id"))
    op.drop_table("objections")
    op.drop_table("objection_sequences")
