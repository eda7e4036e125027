"""Build change sets and make them public: numbering, rendering and comparing happen once, here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.domain.diff import compare
from registry.domain.markdown import render_markdown
from registry.domain.notice import NoticeRule, objection_deadline
from registry.domain.slugs import check_slug
from registry.models import (
    ChangeSet,
    ChangeStatus,
    Comparison,
    Document,
    DocumentVersion,
    NoticePolicy,
    RecordAction,
    SubProcessor,
    SubProcessorRecord,
)
from registry.services import audit, site

RECORD_FIELDS = (
    "name", "legal_entity", "address", "contact", "purpose", "description",
    "data_categories", "countries", "transfer_mechanism", "website", "feature",
)


class PublishError(ValueError):
    """A change set cannot be published as asked; the message says why."""


def create_change_set(session: Session, *, title: str, summary: str = "", is_material: bool = True,
                      created_by_id: int | None = None) -> ChangeSet:
    change_set = ChangeSet(title=title, summary=summary, is_material=is_material,
                           created_by_id=created_by_id, status=ChangeStatus.DRAFT)
    session.add(change_set)
    session.flush()
    return change_set


def draft_document_version(session: Session, change_set: ChangeSet, document: Document, *,
                           source_md: str, summary: str, is_material: bool,
                           author_id: int | None = None) -> DocumentVersion:
    version = DocumentVersion(document=document, change_set=change_set, source_md=source_md,
                              summary=summary, is_material=is_material, author_id=author_id)
    session.add(version)
    session.flush()
    return version


def _latest_record(session: Session, subprocessor: SubProcessor) -> SubProcessorRecord | None:
    return session.scalar(
        select(SubProcessorRecord)
        .where(SubProcessorRecord.subprocessor_id == subprocessor.id)
        .order_by(SubProcessorRecord.id.desc())
        .limit(1)
    )


def draft_subprocessor_change(session: Session, change_set: ChangeSet, slug: str, action: str, *,
                              fields: dict | None = None, summary: str = "") -> SubProcessorRecord:
    """Record the full state of a sub-processor after `action`; a change carries only what differs."""
    action = RecordAction(action)
    subprocessor = session.scalar(select(SubProcessor).where(SubProcessor.slug == slug))
    fields = dict(fields or {})
    unknown = set(fields) - set(RECORD_FIELDS)
    if unknown:
        raise PublishError(f"unknown sub-processor fields: {', '.join(sorted(unknown))}")
    if action is RecordAction.ADD:
        try:
            check_slug(slug)
        except ValueError as error:
            raise PublishError(str(error)) from None
        if subprocessor is not None:
            raise PublishError(f"sub-processor {slug!r} already exists")
        missing = {"name", "legal_entity", "address", "contact", "purpose",
                   "transfer_mechanism"} - set(fields)
        if missing:
            raise PublishError(f"a new sub-processor needs: {', '.join(sorted(missing))}")
        subprocessor = SubProcessor(slug=slug)
        session.add(subprocessor)
        state = {"description": "", "data_categories": [], "countries": [], "website": "",
                 "feature": None, **fields}
    else:
        previous = _latest_record(session, subprocessor) if subprocessor else None
        if previous is None:
            raise PublishError(f"there is no sub-processor {slug!r}")
        state = {name: getattr(previous, name) for name in RECORD_FIELDS} | fields
    record = SubProcessorRecord(subprocessor=subprocessor, change_set=change_set,
                                action=action.value, summary=summary, **state)
    session.add(record)
    session.flush()
    return record


def _notice_rule(policy: NoticePolicy) -> NoticeRule:
    return NoticeRule(length=policy.length, unit=policy.unit, calendars=tuple(policy.calendars),
                      timezone=policy.timezone, objection_days=policy.objection_days)


def _store_comparisons(session: Session, version: DocumentVersion) -> None:
    earlier = session.scalars(
        select(DocumentVersion)
        .where(DocumentVersion.document_id == version.document_id,
               DocumentVersion.number.is_not(None), DocumentVersion.id != version.id)
        .order_by(DocumentVersion.number)
    )
    for old in earlier:
        result = compare(old.source_md, version.source_md,
                         old_label=f"Version {old.number}", new_label=f"Version {version.number}")
        session.add(Comparison(
            old_version_id=old.id, new_version_id=version.id,
            redline_html=result.redline_html, side_by_side_html=result.side_by_side_html,
            unified_diff=result.unified_diff, words_inserted=result.words_inserted,
            words_deleted=result.words_deleted, blocks_changed=result.blocks_changed,
        ))


def publish(session: Session, change_set: ChangeSet, *, published_at: datetime,
            effective_at: datetime, effective_new_customers_at: datetime | None = None,
            actor: str = "system", actor_id: int | None = None,
            now: datetime | None = None) -> ChangeSet:
    """Make a change set public: its notice starts at `published_at`."""
    now = now or now_utc()
    if change_set.published_at is not None:
        raise PublishError("this change set is already public")
    if not (change_set.document_versions or change_set.subprocessor_records):
        raise PublishError("an empty change set cannot be published")
    if effective_at < published_at:
        raise PublishError("the effective date cannot be before the notice starts")
    if effective_new_customers_at and not published_at <= effective_new_customers_at <= effective_at:
        raise PublishError("the date for new customers must lie between the notice and the "
                           "effective date for existing customers")
    change_set.published_at = published_at
    change_set.effective_at = effective_at
    change_set.effective_new_customers_at = effective_new_customers_at
    change_set.status = ChangeStatus.EFFECTIVE if effective_at <= now else ChangeStatus.IN_NOTICE
    deadlines = []
    for version in change_set.document_versions:
        last = session.scalar(
            select(DocumentVersion.number)
            .where(DocumentVersion.document_id == version.document_id,
                   DocumentVersion.number.is_not(None))
            .order_by(DocumentVersion.number.desc()).limit(1)
        )
        version.number = (last or 0) + 1
        rendered = render_markdown(version.source_md)
        version.html = rendered.html
        version.headings = [
            {"level": h.level, "text": h.text, "anchor": h.anchor} for h in rendered.headings
        ]
        session.flush()
        _store_comparisons(session, version)
        deadline = objection_deadline(published_at, _notice_rule(version.document.notice_policy))
        if deadline:
            deadlines.append(deadline)
    if change_set.subprocessor_records:
        policy = session.scalar(select(NoticePolicy).where(NoticePolicy.key == "subprocessors"))
        deadline = objection_deadline(published_at, _notice_rule(policy)) if policy else None
        if deadline:
            deadlines.append(deadline)
    change_set.objection_deadline_at = max(deadlines) if deadlines else None
    site.touch(session, now)
    audit.record(session, actor=actor, actor_id=actor_id, action="change_set.publish",
                 object_type="change_set", object_id=change_set.id,
                 after={"published_at": published_at.isoformat(),
                        "effective_at": effective_at.isoformat(), "title": change_set.title})
    session.flush()
    return change_set
