"""Read the public registry: only public change sets, as of a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from registry.domain.clock import now_utc
from registry.domain.subprocessors import Entry, Event
from registry.models import (
    ChangeSet,
    ChangeStatus,
    Comparison,
    Document,
    DocumentVersion,
    SubProcessor,
    SubProcessorRecord,
)

PUBLIC = (ChangeSet.published_at.is_not(None), ChangeSet.status != ChangeStatus.WITHDRAWN)
# A material change whose notice has not completed is never in force, whatever its date says; the
# worker's tick moves such a date forward, and this keeps readers right even if it has not run.
NOT_YET = datetime.max.replace(tzinfo=UTC)


def effective_moment(change_set: ChangeSet, now: datetime | None = None) -> datetime:
    """The effective date, unless it has passed while the notice of a material change is still going out."""
    if change_set.notice_pending and change_set.effective_at <= (now or now_utc()):
        return NOT_YET
    return change_set.effective_at


def _event(record: SubProcessorRecord) -> Event:
    entry = Entry(
        slug=record.subprocessor.slug, name=record.name, legal_entity=record.legal_entity,
        address=record.address, contact=record.contact, purpose=record.purpose,
        description=record.description, data_categories=tuple(record.data_categories),
        countries=tuple(record.countries), transfer_mechanism=record.transfer_mechanism,
        website=record.website, feature=record.feature,
    )
    change_set = record.change_set
    return Event(slug=entry.slug, action=record.action, effective_at=effective_moment(change_set),
                 entry=entry, summary=record.summary, change_set_id=record.change_set_id,
                 new_customers_at=change_set.effective_new_customers_at)


def subprocessor_events(session: Session, slug: str | None = None) -> list[Event]:
    """Every public sub-processor change, including scheduled ones not yet effective."""
    query = (
        select(SubProcessorRecord)
        .join(SubProcessorRecord.change_set).where(*PUBLIC)
        .options(joinedload(SubProcessorRecord.change_set),
                 joinedload(SubProcessorRecord.subprocessor))
        .order_by(ChangeSet.effective_at, SubProcessorRecord.id)
    )
    if slug is not None:
        query = query.join(SubProcessorRecord.subprocessor).where(SubProcessor.slug == slug)
    return [_event(r) for r in session.scalars(query)]


def documents(session: Session) -> list[Document]:
    return list(session.scalars(select(Document).order_by(Document.position, Document.title)))


def document(session: Session, slug: str) -> Document | None:
    return session.scalar(select(Document).where(Document.slug == slug))


@dataclass(frozen=True)
class PublicVersion:
    version: DocumentVersion
    change_set: ChangeSet

    @property
    def number(self) -> int:
        return self.version.number

    @property
    def effective_at(self) -> datetime:
        return self.change_set.effective_at

    def is_effective(self, now: datetime) -> bool:
        return effective_moment(self.change_set, now) <= now

    @property
    def new_customers_at(self) -> datetime | None:
        return self.change_set.effective_new_customers_at

    def applies_to_new_customers_only(self, now: datetime) -> bool:
        """Already the terms for customers who sign up now, not yet for existing customers."""
        since = self.new_customers_at
        return since is not None and since <= now and not self.is_effective(now)


def versions(session: Session, doc: Document) -> list[PublicVersion]:
    """A document's public versions, oldest first, scheduled ones included."""
    rows = session.scalars(
        select(DocumentVersion)
        .join(DocumentVersion.change_set).where(*PUBLIC, DocumentVersion.document_id == doc.id)
        .options(joinedload(DocumentVersion.change_set))
        .order_by(DocumentVersion.number)
    )
    return [PublicVersion(v, v.change_set) for v in rows]


def current_version(all_versions: list[PublicVersion], now: datetime) -> PublicVersion | None:
    effective = [v for v in all_versions if v.is_effective(now)]
    return max(effective, key=lambda v: (v.effective_at, v.number)) if effective else None


def new_customers_version(all_versions: list[PublicVersion], now: datetime) -> PublicVersion | None:
    """The newest version that applies to new customers at `now` but not yet to existing ones."""
    pending = [v for v in all_versions if v.applies_to_new_customers_only(now)]
    return max(pending, key=lambda v: v.number) if pending else None


def comparison(session: Session, old: DocumentVersion, new: DocumentVersion) -> Comparison | None:
    return session.scalar(
        select(Comparison).where(Comparison.old_version_id == old.id,
                                 Comparison.new_version_id == new.id)
    )


def upcoming_change_sets(session: Session, now: datetime) -> list[ChangeSet]:
    return list(session.scalars(
        select(ChangeSet).where(*PUBLIC, ChangeSet.effective_at > now)
        .options(joinedload(ChangeSet.document_versions).joinedload(DocumentVersion.document),
                 joinedload(ChangeSet.subprocessor_records)
                 .joinedload(SubProcessorRecord.subprocessor))
        .order_by(ChangeSet.effective_at)
    ).unique())


def recent_change_sets(session: Session, limit: int = 20) -> list[ChangeSet]:
    return list(session.scalars(
        select(ChangeSet).where(*PUBLIC)
        .options(joinedload(ChangeSet.document_versions).joinedload(DocumentVersion.document),
                 joinedload(ChangeSet.subprocessor_records)
                 .joinedload(SubProcessorRecord.subprocessor))
        .order_by(ChangeSet.effective_at.desc(), ChangeSet.id.desc()).limit(limit)
    ).unique())
