"""Customers' objections to (and approvals of) an announced change, their timeline, and the per-year
reference counter."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class Objection(db.Model):
    __tablename__ = "objections"
    __table_args__ = (UniqueConstraint("year", "number"), Index("ix_objections_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    # "objection" or "approval" (Regulation 2025/532 Art. 5: a financial entity may approve instead).
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    outcome: Mapped[str | None] = mapped_column(String(40))
    # Set when the address is confirmed: OBJ-<year>-<number>, numbered per year.
    year: Mapped[int | None]
    number: Mapped[int | None]
    reference: Mapped[str | None] = mapped_column(String(20), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    organisation: Mapped[str] = mapped_column(String(300))
    contact_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # Keys of what is objected to: "subprocessor:<record id>" and "document:<version id>".
    items: Mapped[list[str]] = mapped_column(JSON, default=list)
    grounds: Mapped[str] = mapped_column(Text, default="")
    asks_alternative: Mapped[bool] = mapped_column(default=False)
    # "email" (the signed link of a notice: the address was proven by receiving it) or "form".
    source: Mapped[str] = mapped_column(String(10))
    confirm_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    confirm_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last time staff acknowledged, moved or replied to it: "unanswered" counts from here.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every move is an UPDATE ... WHERE version = <the version the staff member read>: of two people
    # moving the same objection at once, one wins and the other is told to reload.
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    events: Mapped[list[ObjectionEvent]] = relationship(back_populates="objection",
                                                        order_by="ObjectionEvent.id")


class ObjectionEvent(db.Model):
    """One step of an objection: confirmed, a state change, a staff note (internal) or reply (public)."""

    __tablename__ = "objection_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    objection_id: Mapped[int] = mapped_column(ForeignKey("objections.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text, default="")
    # Shown on the customer's status page (replies and state changes); notes stay internal.
    is_public: Mapped[bool] = mapped_column(default=True)

    objection: Mapped[Objection] = relationship(back_populates="events")


class ObjectionSequence(db.Model):
    """The last reference number given out in a year, taken by one upsert so two at once differ."""

    __tablename__ = "objection_sequences"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)
