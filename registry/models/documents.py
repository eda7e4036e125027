"""Legal documents, their versions, and the stored comparisons between versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.changes import ChangeSet, NoticePolicy
from registry.models.types import UTCDateTime


class Document(db.Model):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)
    notice_policy_id: Mapped[int] = mapped_column(ForeignKey("notice_policies.id"))

    notice_policy: Mapped[NoticePolicy] = relationship()
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.id"
    )


class DocumentVersion(db.Model):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    # Numbered when the version becomes public, so public numbers have no gaps.
    number: Mapped[int | None]
    source_md: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text, default="")
    headings: Mapped[list] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    is_material: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    document: Mapped[Document] = relationship(back_populates="versions")
    change_set: Mapped[ChangeSet] = relationship(back_populates="document_versions")


class Comparison(db.Model):
    """A redline between two versions, computed once when the newer one is published."""

    __tablename__ = "comparisons"
    __table_args__ = (UniqueConstraint("old_version_id", "new_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    old_version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    new_version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"), index=True)
    redline_html: Mapped[str] = mapped_column(Text)
    side_by_side_html: Mapped[str] = mapped_column(Text)
    unified_diff: Mapped[str] = mapped_column(Text)
    words_inserted: Mapped[int]
    words_deleted: Mapped[int]
    blocks_changed: Mapped[int]
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
