"""customer organisations (domains, notice terms, designated contacts), the approvers' inbox preferences
and daily digest, the mail worker's heartbeat

Revision ID: orgs01
Revises: object01
Create Date: 2026-12-01 18:50:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = "orgs01"
down_revision = "object01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contract_reference", sa.String(length=200), nullable=False),
        sa.Column("notice_length", sa.Integer(), nullable=True),
        sa.Column("notice_unit", sa.String(length=20), nullable=True),
        sa.Column("objection_days", sa.Integer(), nullable=True),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "organisation_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_organisation_domains_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_organisation_domains_domain")),
    )
    op.create_index(op.f("ix_organisation_domains_organisation_id"), "organisation_domains",
                    ["organisation_id"], unique=False)
    op.create_table(
        "organisation_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_organisation_contacts_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_contacts")),
        sa.UniqueConstraint("organisation_id", "email",
                            name=op.f("uq_organisation_contacts_organisation_id")),
    )
    op.create_table(
        "worker_beats",
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("beat_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_beats")),
    )
    op.create_table(
        "inbox_digests",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("run_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_inbox_digests")),
    )
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("inbox_muted", sa.JSON(), nullable=True))
    op.execute("UPDATE users SET inbox_muted = '[]'")
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("inbox_muted", existing_type=sa.JSON(), nullable=False)


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("inbox_muted")
    op.drop_table("inbox_digests")
    op.drop_table("worker_beats")
    op.drop_table("organisation_contacts")
    op.drop_index(op.f("ix_organisation_domains_organisation_id"), table_name="organisation_domains")
    op.drop_table("organisation_domains")
    op.drop_table("organisations")
