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

    document_versions: Mapped[list[DocumentVersion]] = relationship(  # noqa: F821
        back_populates="change_set", order_by="DocumentVersion.id"
    )
    subprocessor_records: Mapped[list[SubProcessorRecord]] = relationship(  # noqa: F821
        back_populates="change_set", order_by="SubProcessorRecord.id"
    )
