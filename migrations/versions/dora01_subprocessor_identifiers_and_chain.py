"""the DORA identifiers of a sub-processor record and the chain below it

Revision ID: dora01
Revises: hooks01
Create Date: 2026-12-01 21:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "dora01"
down_revision = "hooks01"
branch_labels = None
depends_on = None

TEXT_COLUMNS = (("lei", 20), ("euid", 80), ("latin_name", 300), ("hq_country", 2), ("parent_name", 300),
                ("parent_lei", 20), ("ict_service_type", 3))


def upgrade():
    with op.batch_alter_table("subprocessor_records", schema=None) as batch_op:
        for name, length in TEXT_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), server_default="", nullable=False))
        # Existing records have no chain: an empty list, written so that no row is ever NULL.
        batch_op.add_column(sa.Column("chain", sa.JSON(), server_default="[]", nullable=True))
    op.execute("UPDATE subprocessor_records SET chain = '[]' WHERE chain IS NULL")
    with op.batch_alter_table("subprocessor_records", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.JSON(), nullable=False, server_default=None)


def downgrade():
    with op.batch_alter_table("subprocessor_records", schema=None) as batch_op:
        batch_op.drop_column("chain")
        for name, _ in reversed(TEXT_COLUMNS):
            batch_op.drop_column(name)
