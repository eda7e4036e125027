"""Notices of a change and their per-recipient deliveries: the outbox the worker drains."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class Notice(db.Model):
    __tablename__ = "notices"
    __table_args__ = (
        # The worker's question "which notices still have recipients to write?" on a table that only grows.
        Index("ix_notices_expanding", "id", postgresql_where=text("is_expanding"),
              sqlite_where=text("is_expanding")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id"))
    subject: Mapped[str] = mapped_column(String(300))
    # "announcement" of a change, "date_moved": its effective date moved, told to those already told, or
    # "withdrawal": a withdrawn change told to those who were notified.
    kind: Mapped[str] = mapped_column(String(20), default="announcement", server_default="announcement")
    # Why a date moved or a change was withdrawn, as the mail and the feed say it.
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A date_moved notice records the move itself: the plan's history is read from these rows.
    moved_from_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moved_to_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body_sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    dispatch_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # services.notices.start_notice writes the recipients a chunk of subscribers at a time (`expand`):
    # while `is_expanding`, the deliveries of every subscriber with an id up to `recipients_through`
    # exist and the rest are still to be written, and the notice cannot be settled.
    is_expanding: Mapped[bool] = mapped_column(default=False, server_default=false())
    recipients_through: Mapped[int] = mapped_column(default=0, server_default="0")
    feed_published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the provider first failed a request of this notice for its own reasons (an outage, a
    # timeout); staff are alerted once, when it is set.
    delayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(db.Model):
    __tablename__ = "deliveries"
    __table_args__ = (
        # Also the index for every per-notice query (notice_id leads).
        UniqueConstraint("notice_id", "email"),
        # The worker's hot path updates each row twice (claim, result); every index on the table costs
        # an entry per update, so only partial indexes serve it: the claim reads queued rows in id order,
        # recovery looks for rows left "sending".
        Index("ix_deliveries_queued", "id", postgresql_where=text("status = 'queued'"),
              sqlite_where=text("status = 'queued'")),
        Index("ix_deliveries_sending", "claimed_at", postgresql_where=text("status = 'sending'"),
              sqlite_where=text("status = 'sending'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"))
    email: Mapped[str] = mapped_column(String(320))
    # The topic under which this recipient gets the notice: its one-click unsubscribe turns it off.
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    # Requests that may have reached the provider without an answer: each one may have been accepted,
    # so `--max-attempts` caps these (transient failures known not to be taken are retried by time).
    unknown_outcomes: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # A retry after a temporary failure waits until then; null means as soon as a worker is free.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker's claim on this row (one per Mail Send request): results are written only by it.
    claim_token: Mapped[str | None] = mapped_column(String(64))
    # Sent again after an attempt whose outcome was unknown: the recipient may have it twice.
    is_resent: Mapped[bool] = mapped_column(default=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    last_event: Mapped[str | None] = mapped_column(String(40))
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # What this recipient was sent is kept by the request: the send_attempts row of its claim token whose
    # id range holds it (services.notices.sent_in), with the message and exactly its values. The claim
    # token stays once the row is settled, so that the row keeps naming its last request.


class SendAttempt(db.Model):
    """A Mail Send request handed to the provider, written just before it goes out, with what it carried:
    the stored message and each recipient's own values.

    Its recipients are the deliveries of its notice with its claim token inside its id range. After a
    crash, a delivery still "sending" inside such a range may have been accepted (its outcome is unknown),
    while one outside was claimed but never sent: only the first is flagged as resent.

    The values are one JSON object per request, keyed by delivery id, rather than columns of each
    delivery: writing them into 1,000 delivery rows before every request made PostgreSQL copy each row
    once more (and check its foreign key), 1.9 s of an 8.7 s in-process drain of 100,000 (README).
    """

    __tablename__ = "send_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_token: Mapped[str] = mapped_column(String(64), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"))
    first_delivery_id: Mapped[int]
    last_delivery_id: Mapped[int]
    recipients: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # The message handed over. Null only for requests recorded before the messages were kept here
    # (their recipients' values were overwritten by a later request, see migration sent01).
    message_sha256: Mapped[str | None] = mapped_column(ForeignKey("message_bodies.sha256"))
    # {"<delivery id>": {"substitutions": {...}, "headers": {...}}} for every recipient of the request.
    personalizations: Mapped[dict | None] = mapped_column(JSON)


class DispatchClaim(db.Model):
    """A worker's claim, kept alive by a heartbeat at each request: its "sending" rows are recovered
    only once the heartbeat is older than the sending timeout, never while the worker still sends."""

    __tablename__ = "dispatch_claims"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    # host:pid, for whoever reads the table during an incident.
    worker: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProviderPause(db.Model):
    """A Retry-After from the provider: no worker sends before `until`."""

    __tablename__ = "provider_pauses"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)


class Suppression(db.Model):
    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class WebhookBatch(db.Model):
    """A signed Event Webhook post, stored as it came; the worker applies it (services.provider_events).

    The request only verifies, stores and answers, so SendGrid's concurrent posts never wait on each
    other's row locks. A batch whose application failed keeps its error and is retried a few times.
    """

    __tablename__ = "webhook_batches"
    __table_args__ = (
        # The worker's claim reads unapplied batches in id order; applied ones are most of the table.
        Index("ix_webhook_batches_pending", "id", postgresql_where=text("applied_at IS NULL"),
              sqlite_where=text("applied_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    body: Mapped[str] = mapped_column(Text)
    events: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    # What applying it did: counts, and why events were ignored (e.g. {"not a delivery event": 3}).
    outcome: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class WebhookEvent(db.Model):
    """SendGrid event ids already applied (SendGrid sends duplicates), with what each said.

    delivery_id has no foreign key: the row is written for every event, including those about no
    delivery of ours, and the message ids of a delivery's accepted events decide its resent flag.
    """

    __tablename__ = "webhook_events"

    sg_event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    event: Mapped[str | None] = mapped_column(String(40))
    delivery_id: Mapped[int | None] = mapped_column(index=True)
    # The X-Message-Id of the request, for events that prove the provider accepted it.
    message_id: Mapped[str | None] = mapped_column(String(200))
