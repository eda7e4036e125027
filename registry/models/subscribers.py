"""Topics, subscribers, their per-topic choices, the double opt-in tokens and the daily mail quota."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class Topic(db.Model):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    # `document:<slug>` keys a per-document topic; the notice service recognises them.
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # The Administrative topic carries material-change notices and cannot be turned off.
    is_administrative: Mapped[bool] = mapped_column(default=False)
    is_default_on: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class Subscriber(db.Model):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored trimmed and lower-cased, so one address is one subscriber.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    source: Mapped[str] = mapped_column(String(20), default="form")
    # Only imported contacts carry these; the public form asks for nothing but the address.
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Signed into every preferences and unsubscribe link; deleting the subscription moves it on, so
    # links mailed to an earlier subscription of the same address stop working.
    generation: Mapped[int] = mapped_column(default=1, server_default="1")

    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="subscriber")


class Subscription(db.Model):
    __tablename__ = "subscriptions"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id"), primary_key=True, index=True)
    is_subscribed: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    topic: Mapped[Topic] = relationship()


class ConfirmationToken(db.Model):
    """One double opt-in link: only the SHA-256 of the token is stored; single use, 72 hours."""

    __tablename__ = "confirmation_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The topics chosen on the form that sent this link; applied when it is confirmed.
    topic_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The topics the form offered: any topic introduced later gets the new-topic rule on confirmation.
    offered_topic_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship()


class MailQuota(db.Model):
    """How many subscription mails one address asked for on one UTC day.

    One row per address and day, counted up by a single INSERT ... ON CONFLICT DO UPDATE, so
    concurrent requests for one address cannot both see "2 so far" and both send. The address is
    kept only as a keyed hash: the count is needed, the address is not.
    """

    __tablename__ = "mail_quotas"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    count: Mapped[int] = mapped_column(default=0)
