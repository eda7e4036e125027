"""customers' webhook endpoints: endpoints, the topics they follow, events, deliveries, attempts

Revision ID: hooks01
Revises: orgs01
Create Date: 2026-12-01 22:00:00

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = "hooks01"
down_revision = "orgs01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=120), nullable=False),
        sa.Column("previous_secret", sa.String(length=120), nullable=True),
        sa.Column("previous_secret_expires_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=False),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_endpoints_organisation_id_organisations")),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_endpoints_subscriber_id_subscribers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
    )
    op.create_index(op.f("ix_endpoints_is_enabled"), "endpoints", ["is_enabled"], unique=False)
    op.create_index(op.f("ix_endpoints_organisation_id"), "endpoints", ["organisation_id"], unique=False)
    op.create_index(op.f("ix_endpoints_subscriber_id"), "endpoints", ["subscriber_id"], unique=False)
    op.create_table(
        "endpoint_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_events")),
        sa.UniqueConstraint("uid", name=op.f("uq_endpoint_events_uid")),
    )
    op.create_table(
        "endpoint_topics",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("topic_key", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_topics_endpoint_id_endpoints")),
        sa.PrimaryKeyConstraint("endpoint_id", "topic_key", name=op.f("pk_endpoint_topics")),
    )
    op.create_index(op.f("ix_endpoint_topics_topic_key"), "endpoint_topics", ["topic_key"], unique=False)
    op.create_table(
        "endpoint_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("first_attempt_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("delivered_at", registry.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_deliveries_endpoint_id_endpoints")),
        sa.ForeignKeyConstraint(["event_id"], ["endpoint_events.id"],
                                name=op.f("fk_endpoint_deliveries_event_id_endpoint_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_deliveries")),
        sa.UniqueConstraint("event_id", "endpoint_id", name=op.f("uq_endpoint_deliveries_event_id")),
    )
    op.create_index("ix_endpoint_deliveries_due", "endpoint_deliveries", ["status", "next_attempt_at"],
                    unique=False)
    op.create_index(op.f("ix_endpoint_deliveries_endpoint_id"), "endpoint_deliveries", ["endpoint_id"],
                    unique=False)
    op.create_table(
        "endpoint_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("at", registry.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("is_success", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["endpoint_deliveries.id"],
                                name=op.f("fk_endpoint_attempts_delivery_id_endpoint_deliveries")),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"],
                                name=op.f("fk_endpoint_attempts_endpoint_id_endpoints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoint_attempts")),
    )
    op.create_index(op.f("ix_endpoint_attempts_delivery_id"), "endpoint_attempts", ["delivery_id"], unique=False)
    op.create_index(op.f("ix_endpoint_attempts_endpoint_id"), "endpoint_attempts", ["endpoint_id"], unique=False)


def downgrade():
    op.drop_table("endpoint_attempts")
    op.drop_table("endpoint_deliveries")
    op.drop_table("endpoint_topics")
    op.drop_table("endpoint_events")
    op.drop_table("endpoints")
