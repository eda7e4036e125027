"""Read the public registry: only public change sets, as of a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from registry.domain.chain import chain_from_json
from registry.domain.clock import now_utc
from registry.domain.ordering import in_force_prefix
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


def _event(record: SubProcessorRecord, effective_at: datetime) -> Event:
    entry = Entry(
        slug=record.subprocessor.slug, name=record.name, legal_entity=record.legal_entity,
        address=record.address, contact=record.contact, purpose=record.purpose,
        description=record.description, data_categories=tuple(record.data_categories),
        countries=tuple(record.countries), transfer_mechanism=record.transfer_mechanism,
        website=record.website, feature=record.feature, lei=record.lei, euid=record.euid,
        latin_name=record.latin_name, hq_country=record.hq_country, parent_name=record.parent_name,
        parent_lei=record.parent_lei, ict_service_type=record.ict_service_type,
        chain=chain_from_json(record.chain),
    )
    return Event(slug=entry.slug, action=record.action, effective_at=effective_at,
                 entry=entry, summary=record.summary, change_set_id=record.change_set_id,
                 new_customers_at=record.change_set.effective_new_customers_at,
                 announced_at=record.change_set.published_at)


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
    records = list(session.scalars(query))
    # One entry's changes take effect in the order they were made (record id): a change whose date
    # has come while an earlier one still waits for its notice waits too.
    moments: dict[int, datetime] = {}
    latest: dict[int, datetime] = {}
    for record in sorted(records, key=lambda r: r.id):
        own = effective_moment(record.change_set)
        moments[record.id] = latest[record.subprocessor_id] = max(
            own, latest.get(record.subprocessor_id, own))
    return [_event(r, moments[r.id]) for r in sorted(records, key=lambda r: (moments[r.id], r.id))]


def previous_record(session: Session, record: SubProcessorRecord) -> SubProcessorRecord | None:
    """The state of the entry in force immediately before `record` takes effect, if it was listed.

    An entry's changes take effect in record order, so it is the newest older public record that is
    not withdrawn; drafts and withdrawn changes never were in force.
    """
    return session.scalar(
        select(SubProcessorRecord).join(SubProcessorRecord.change_set)
        .where(*PUBLIC, SubProcessorRecord.subprocessor_id == record.subprocessor_id,
               SubProcessorRecord.id < record.id)
        .order_by(SubProcessorRecord.id.desc()).limit(1)
    )


def documents(session: Session) -> list[Document]:
    return list(session.scalars(select(Document).order_by(Document.position, Document.title)))


def document(session: Session, slug: str) -> Document | None:
    return session.scalar(select(Document).where(Document.slug == slug))


@dataclass(frozen=True)
class PublicVersion:
    version: DocumentVersion
    change_set: ChangeSet
    # The version in force immediately before this one takes effect (see `predecessor`).
    previous: PublicVersion | None = None

    @property
    def number(self) -> int:
        return self.version.number

    @property
    def previous_number(self) -> int | None:
        return self.previous.number if self.previous else None

    @property
    def effective_at(self) -> datetime:
        return self.change_set.effective_at

    def is_effective(self, now: datetime) -> bool:
        """In force at `now`: its date has come and its notice is done, and so for every older version."""
        version: PublicVersion | None = self
        while version is not None:
            if effective_moment(version.change_set, now) > now:
                return False
            version = version.previous
        return True

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
    # Public versions that are not withdrawn take effect in number order: each one's predecessor is
    # the one before it in this list.
    chain: list[PublicVersion] = []
    for row in rows:
        chain.append(PublicVersion(row, row.change_set, chain[-1] if chain else None))
    return chain


def current_version(all_versions: list[PublicVersion], now: datetime) -> PublicVersion | None:
    """The version in force: versions take effect in number order, so a version is in force only if
    every older public one is too, whatever the dates say."""
    ordered = sorted(all_versions, key=lambda v: v.number)
    count = in_force_prefix([effective_moment(v.change_set, now) for v in ordered], now)
    return ordered[count - 1] if count else None


def predecessor(session: Session, version: DocumentVersion) -> DocumentVersion | None:
    """The version that will be in force immediately before `version` takes effect.

    Versions take effect in number order and withdrawn ones never do, so it is the newest older public
    version that is not withdrawn (for a draft: the newest public one). Every comparison customers see
    for a version is against this one.
    """
    query = (select(DocumentVersion).join(DocumentVersion.change_set)
             .where(*PUBLIC, DocumentVersion.document_id == version.document_id,
                    DocumentVersion.id != version.id))
    if version.number is not None:
        query = query.where(DocumentVersion.number < version.number)
    return session.scalar(query.order_by(DocumentVersion.number.desc()).limit(1))


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
