"""staff workspace and notices

Revision ID: a19f09fc09ce
Revises: 3e32b1054725
Create Date: 2026-11-26 20:09:11.724712

"""
import sqlalchemy as sa
from alembic import op

import registry.models.types

# revision identifiers, used by Alembic.
revision = 'a19f09fc09ce'
down_revision = '3e32b1054725'
branch_labels = None
depends_on = None


# The audit log is append-only: on PostgreSQL the database itself refuses UPDATE, DELETE and TRUNCATE.
AUDIT_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
        MESSAGE = 'audit_entries is append-only; refused ' || TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
CREATE TRIGGER audit_entries_no_truncate
    BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only();
"""
AUDIT_TRIGGER_DROP = """
DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries;
DROP TRIGGER IF EXISTS audit_entries_no_update_delete ON audit_entries;
DROP FUNCTION IF EXISTS audit_entries_append_only();
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_TRIGGER)
    op.create_table('outgoing_mails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('to', sa.String(length=320), nullable=False),
    sa.Column('template', sa.String(length=80), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('created_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=64), nullable=True),
    sa.Column('is_resent', sa.Boolean(), nullable=False),
    sa.Column('sent_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_mails'))
    )
    with op.batch_alter_table('outgoing_mails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outgoing_mails_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outgoing_mails_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_outgoing_mails_to'), ['to'], unique=False)

    op.create_table('confirmation_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('topic_ids', sa.JSON(), nullable=False),
    sa.Column('offered_topic_ids', sa.JSON(), nullable=False),
    sa.Column('created_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_confirmation_tokens_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_confirmation_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_confirmation_tokens_token_hash'))
    )
    with op.batch_alter_table('confirmation_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_confirmation_tokens_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('password_reset_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_reset_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_tokens')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_password_reset_tokens_token_sha256'))
    )
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('staff_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('is_verified', sa.Boolean(), nullable=False),
    sa.Column('ended_at', registry.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staff_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_staff_sessions_token_sha256'))
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('change_set_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_set_id', sa.Integer(), nullable=False),
    sa.Column('at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_change_set_events_actor_id_users')),
    sa.ForeignKeyConstraint(['change_set_id'], ['change_sets.id'], name=op.f('fk_change_set_events_change_set_id_change_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_set_events'))
    )
    with op.batch_alter_table('change_set_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_set_events_change_set_id'), ['change_set_id'], unique=False)

    op.create_table('comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_set_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('created_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_comments_author_id_users')),
    sa.ForeignKeyConstraint(['change_set_id'], ['change_sets.id'], name=op.f('fk_comments_change_set_id_change_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments'))
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_change_set_id'), ['change_set_id'], unique=False)

    op.create_table('send_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_token', sa.String(length=64), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('first_delivery_id', sa.Integer(), nullable=False),
    sa.Column('last_delivery_id', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('started_at', registry.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_send_attempts_notice_id_notices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_attempts'))
    )
    with op.batch_alter_table('send_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_send_attempts_claim_token'), ['claim_token'], unique=False)

    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('planned_effective_at', registry.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('effective_moved_at', registry.models.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', registry.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('is_resent', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_index(batch_op.f('ix_deliveries_notice_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_status'))
        batch_op.create_index('ix_deliveries_queued', ['id'], unique=False, postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))
        batch_op.create_index('ix_deliveries_sending', ['claimed_at'], unique=False, postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.create_foreign_key(batch_op.f('fk_deliveries_topic_id_topics'), 'topics', ['topic_id'], ['id'])

    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), server_default='announcement', nullable=False))

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('company', sa.String(length=200), nullable=False, server_default=''))

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_topic_id'), ['topic_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))



def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(AUDIT_TRIGGER_DROP)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_topic_id'))

    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('company')
        batch_op.drop_column('name')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_deliveries_topic_id_topics'), type_='foreignkey')
        batch_op.drop_index('ix_deliveries_sending', postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.drop_index('ix_deliveries_queued', postgresql_where=sa.text("status = 'queued'"), sqlite_where=sa.text("status = 'queued'"))
        batch_op.create_index(batch_op.f('ix_deliveries_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_notice_id'), ['notice_id'], unique=False)
        batch_op.drop_column('is_resent')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('topic_id')

    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.drop_column('effective_moved_at')
        batch_op.drop_column('planned_effective_at')

    with op.batch_alter_table('send_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_send_attempts_claim_token'))

    op.drop_table('send_attempts')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_change_set_id'))

    op.drop_table('comments')
    with op.batch_alter_table('change_set_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_set_events_change_set_id'))

    op.drop_table('change_set_events')
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_user_id'))

    op.drop_table('staff_sessions')
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_tokens_user_id'))

    op.drop_table('password_reset_tokens')
    with op.batch_alter_table('confirmation_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_confirmation_tokens_subscriber_id'))

    op.drop_table('confirmation_tokens')
    with op.batch_alter_table('outgoing_mails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outgoing_mails_to'))
        batch_op.drop_index(batch_op.f('ix_outgoing_mails_status'))
        batch_op.drop_index(batch_op.f('ix_outgoing_mails_created_at'))

    op.drop_table('outgoing_mails')
