"""each request (send_attempts) keeps its message and its recipients' values, not each delivery

Revision ID: sent01
Revises: dora01
Create Date: 2026-12-02 07:40:00

The values move from the deliveries to the request that last carried each of them: the send_attempts
row of the delivery's claim token whose id range holds it (the latest, after a split). A delivery with
values and no such request (written before requests were recorded, or by the demo) gets a request of
its own claim token made for it here (one per chunk of deliveries read); one without a claim token gets a
token naming this migration. Memory stays bounded: the deliveries are read in id order, in chunks, and
each request is written once its range has been read.
Earlier requests whose recipients' values were overwritten by a later one keep none (NULL): those values
no longer existed.
"""
from collections import defaultdict

import sqlalchemy as sa
from alembic import context, op

from registry.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = "sent01"
down_revision = "dora01"
branch_labels = None
depends_on = None

deliveries = sa.table(
    "deliveries", sa.column("id", sa.Integer), sa.column("notice_id", sa.Integer),
    sa.column("claim_token", sa.String), sa.column("claimed_at", UTCDateTime()),
    sa.column("sent_at", UTCDateTime()), sa.column("message_sha256", sa.String),
    sa.column("substitutions", sa.JSON), sa.column("headers", sa.JSON))
attempts = sa.table(
    "send_attempts", sa.column("id", sa.Integer), sa.column("claim_token", sa.String),
    sa.column("notice_id", sa.Integer), sa.column("first_delivery_id", sa.Integer),
    sa.column("last_delivery_id", sa.Integer), sa.column("recipients", sa.Integer),
    sa.column("started_at", UTCDateTime()), sa.column("message_sha256", sa.String),
    sa.column("personalizations", sa.JSON))
notices = sa.table("notices", sa.column("id", sa.Integer), sa.column("created_at", UTCDateTime()))
CHUNK = 5000


def upgrade():
    with op.batch_alter_table("send_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("personalizations", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_send_attempts_message_sha256_message_bodies"),
                                    "message_bodies", ["message_sha256"], ["sha256"])
    # `flask db upgrade -x chunk=N` reads N deliveries at a time (5,000 by default).
    chunk = int(context.get_x_argument(as_dictionary=True).get("chunk", CHUNK))
    _move_values_to_requests(op.get_bind(), chunk)
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_deliveries_message_sha256_message_bodies"),
                                 type_="foreignkey")
        batch_op.drop_column("headers")
        batch_op.drop_column("substitutions")
        batch_op.drop_column("message_sha256")


def _move_values_to_requests(connection, chunk: int) -> None:
    with_values = deliveries.c.message_sha256.is_not(None)
    connection.execute(
        deliveries.update().where(with_values, deliveries.c.claim_token.is_(None))
        .values(claim_token="sent01-" + sa.cast(deliveries.c.notice_id, sa.String)))
    # Each request's recipients: those of its token and notice inside its range, the latest request first.
    requests: dict[tuple[str, int], list[tuple[int, int, int]]] = defaultdict(list)
    for row in connection.execute(sa.select(attempts.c.id, attempts.c.claim_token, attempts.c.notice_id,
                                            attempts.c.first_delivery_id, attempts.c.last_delivery_id)
                                  .order_by(attempts.c.id.desc())):
        requests[(row.claim_token, row.notice_id)].append(
            (row.id, row.first_delivery_id, row.last_delivery_id))
    ends = {attempt: last for ranges in requests.values() for attempt, _first, last in ranges}
    carried: dict[int, dict] = defaultdict(dict)
    sha256: dict[int, str] = {}
    orphans: dict[tuple[str, int], list] = defaultdict(list)

    def write(done: list[int]) -> None:
        for request in done:
            connection.execute(attempts.update().where(attempts.c.id == request).values(
                message_sha256=sha256.pop(request), personalizations=carried.pop(request)))

    def write_orphans() -> None:
        # One request per token and notice and chunk: the chunks' id ranges do not overlap.
        for (token, notice_id), rows in orphans.items():
            connection.execute(attempts.insert().values(
                claim_token=token, notice_id=notice_id, first_delivery_id=rows[0][0].id,
                last_delivery_id=rows[-1][0].id, recipients=len(rows), started_at=rows[0][0].at,
                message_sha256=rows[0][0].message_sha256,
                personalizations={str(row.id): values for row, values in rows}))
        orphans.clear()

    # When a made request started: its delivery's claim, else its acceptance, else its notice.
    notice_created = (sa.select(notices.c.created_at).where(notices.c.id == deliveries.c.notice_id)
                      .scalar_subquery())
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(deliveries.c.id, deliveries.c.notice_id, deliveries.c.claim_token,
                      deliveries.c.message_sha256, deliveries.c.substitutions, deliveries.c.headers,
                      sa.func.coalesce(deliveries.c.claimed_at, deliveries.c.sent_at, notice_created)
                      .label("at"))
            .where(with_values, deliveries.c.id > last_id).order_by(deliveries.c.id).limit(chunk)).all()
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            values = {"substitutions": row.substitutions or {}, "headers": row.headers or {}}
            request = next((attempt for attempt, first, last in requests[(row.claim_token, row.notice_id)]
                            if first <= row.id <= last), None)
            if request is None:
                orphans[(row.claim_token, row.notice_id)].append((row, values))
                continue
            carried[request][str(row.id)] = values
            sha256[request] = row.message_sha256
        # The deliveries come in id order: a request whose range ends before this chunk's last is whole.
        write([request for request in carried if ends[request] <= last_id])
        write_orphans()
    write(list(carried))


def downgrade():
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("substitutions", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_deliveries_message_sha256_message_bodies"),
                                    "message_bodies", ["message_sha256"], ["sha256"])
    connection = op.get_bind()
    # Oldest request first: a later request's values overwrite an earlier one's, as they did then.
    for request in connection.execute(
            sa.select(attempts.c.claim_token, attempts.c.notice_id, attempts.c.message_sha256,
                      attempts.c.personalizations)
            .where(attempts.c.personalizations.is_not(None)).order_by(attempts.c.id)).all():
        for delivery_id, values in request.personalizations.items():
            connection.execute(
                deliveries.update().where(deliveries.c.id == int(delivery_id),
                                          deliveries.c.claim_token == request.claim_token,
                                          deliveries.c.notice_id == request.notice_id)
                .values(message_sha256=request.message_sha256, substitutions=values.get("substitutions"),
                        headers=values.get("headers")))
    with op.batch_alter_table("send_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_send_attempts_message_sha256_message_bodies"),
                                 type_="foreignkey")
        batch_op.drop_column("personalizations")
        batch_op.drop_column("message_sha256")
