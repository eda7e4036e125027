"""Customers' webhook endpoints, the events written for them (an outbox) and each delivery's attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class Endpoint(db.Model):
    """An HTTPS URL that receives signed events; owned by a subscriber or an organisation."""

    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(120))
    # After a rotation the old secret still signs (a second entry) until it expires.
    previous_secret: Mapped[str | None] = mapped_column(String(120))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_enabled: Mapped[bool] = mapped_column(default=True, index=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    topics: Mapped[list[EndpointTopic]] = relationship(
        back_populates="endpoint", cascade="all, delete-orphan", order_by="EndpointTopic.topic_key")

    @property
    def topic_keys(self) -> list[str]:
        return [t.topic_key for t in self.topics]


class EndpointTopic(db.Model):
    """A topic the endpoint follows (the subscription topics' keys): events fan out by a join."""

    __tablename__ = "endpoint_topics"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), primary_key=True)
    topic_key: Mapped[str] = mapped_column(String(60), primary_key=True, index=True)

    endpoint: Mapped[Endpoint] = relationship(back_populates="topics")


class EndpointEvent(db.Model):
    """One event, written in the transaction of the change it reports; its payload never changes."""

    __tablename__ = "endpoint_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random: with the endpoint's id it makes the webhook-id, stable over retries and resends.
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)


class EndpointDelivery(db.Model):
    """One event for one endpoint: queued -> sending -> delivered, or failed after 72 hours."""

    __tablename__ = "endpoint_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_endpoint_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("endpoint_events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Retries count from here (a resend starts a new window).
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str] = mapped_column(Text, default="")

    event: Mapped[EndpointEvent] = relationship()
    endpoint: Mapped[Endpoint] = relationship()

    @property
    def message_id(self) -> str:
        return message_id(self.event.uid, self.endpoint_id)


def message_id(event_uid: str, endpoint_id: int) -> str:
    """The webhook-id header: the same on every attempt and resend of one event to one endpoint."""
    return f"msg_{event_uid}_{endpoint_id}"


class EndpointAttempt(db.Model):
    """One HTTP attempt: the delivery log customers and staff read."""

    __tablename__ = "endpoint_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("endpoint_deliveries.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_success: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(Text, default="")
    latency_ms: Mapped[int] = mapped_column(default=0)
    # The address the attempt connected to (or would have: a refused one is logged too).
    address: Mapped[str] = mapped_column(String(64), default="")

    delivery: Mapped[EndpointDelivery] = relationship()
