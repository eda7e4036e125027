"""Change sets (what legal staff publish together) and the notice policies that govern them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class ChangeStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    IN_NOTICE = "in_notice"
    EFFECTIVE = "effective"
    WITHDRAWN = "withdrawn"


class NoticePolicy(db.Model):
    __tablename__ = "notice_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    length: Mapped[int]
    unit: Mapped[str] = mapped_column(String(20))
    calendars: Mapped[list[str]] = mapped_column(JSON, default=list)
    timezone: Mapped[str] = mapped_column(String(64))
    objection_days: Mapped[int | None]


class ChangeSet(db.Model):
    """A group of document versions and sub-processor changes that take effect together.

    A change set is public from `published_at` (when its notice started) unless withdrawn;
    the registry as of any moment is computed from `effective_at`.
    """

    __tablename__ = "change_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=ChangeStatus.DRAFT, index=True)
    is_material: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    notice_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    effective_new_customers_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    objection_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The effective date the approver scheduled; effective_at moves later if the notice completes late.
    planned_effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_moved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every edit and transition bumps it; an UPDATE that read an older revision fails (StaleDataError),
    # so an approval can never land on content edited after the approver read it.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": revision}

    document_versions: Mapped[list[DocumentVersion]] = relationship(  # noqa: F821
        back_populates="change_set", order_by="DocumentVersion.id"
    )
    subprocessor_records: Mapped[list[SubProcessorRecord]] = relationship(  # noqa: F821
        back_populates="change_set", order_by="SubProcessorRecord.id"
    )

    @property
    def notice_pending(self) -> bool:
        """A material change whose notice has not completed can never be in force."""
        return self.is_material and self.notice_completed_at is None

    def in_force_from(self) -> datetime | None:
        """When the change applies to everyone, or None while its notice is still going out."""
        return None if self.notice_pending else self.effective_at

    events: Mapped[list[ChangeSetEvent]] = relationship(
        back_populates="change_set", order_by="ChangeSetEvent.id"
    )
    comments: Mapped[list[Comment]] = relationship(
        back_populates="change_set", order_by="Comment.id"
    )


class ChangeSetEvent(db.Model):
    """One step in a change set's life: created, edited, a status transition, a moved date."""

    __tablename__ = "change_set_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")

    change_set: Mapped[ChangeSet] = relationship(back_populates="events")


class Comment(db.Model):
    """Discussion between editor and approver on a change set."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    body: Mapped[str] = mapped_column(Text)

    change_set: Mapped[ChangeSet] = relationship(back_populates="comments")
