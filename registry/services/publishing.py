"""Build change sets and make them public: numbering, rendering and comparing happen once, here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from registry.domain import identifiers, ordering
from registry.domain import organisations as org_rules
from registry.domain.chain import ChainError, check_chain
from registry.domain.clock import now_utc
from registry.domain.diff import compare
from registry.domain.identifiers import IdentifierError
from registry.domain.markdown import render_markdown
from registry.domain.notice import NoticeRule, earliest_effective, objection_deadline
from registry.domain.slugs import check_slug
from registry.models import (
    ChangeSet,
    ChangeSetEvent,
    ChangeStatus,
    Comparison,
    Document,
    DocumentVersion,
    NoticePolicy,
    RecordAction,
    Role,
    SubProcessor,
    SubProcessorRecord,
    User,
)
from registry.services import audit, organisations, reading, site

RECORD_FIELDS = (
    "name", "legal_entity", "address", "contact", "purpose", "description",
    "data_categories", "countries", "transfer_mechanism", "website", "feature",
    "lei", "euid", "latin_name", "hq_country", "parent_name", "parent_lei", "ict_service_type", "chain",
)


SUBPROCESSOR_POLICY = "subprocessors"
ACTION_WORDS = {"add": "added", "change": "changed", "remove": "removed"}


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
    """The state a new change starts from: the latest public record, never a draft or a withdrawn one."""
    return session.scalar(
        select(SubProcessorRecord).join(SubProcessorRecord.change_set)
        .where(SubProcessorRecord.subprocessor_id == subprocessor.id,
               ChangeSet.published_at.is_not(None), ChangeSet.status != ChangeStatus.WITHDRAWN)
        .order_by(ChangeSet.effective_at.desc(), SubProcessorRecord.id.desc())
        .limit(1)
    )


def _is_taken(session: Session, subprocessor: SubProcessor) -> bool:
    """A slug stays taken while any change set that is not withdrawn has a record for it."""
    return session.scalar(
        select(func.count()).select_from(SubProcessorRecord).join(SubProcessorRecord.change_set)
        .where(SubProcessorRecord.subprocessor_id == subprocessor.id,
               ChangeSet.status != ChangeStatus.WITHDRAWN)
    ) > 0


def draft_subprocessor_change(session: Session, change_set: ChangeSet, slug: str, action: str, *,
                              fields: dict | None = None, summary: str = "") -> SubProcessorRecord:
    """Record the full state of a sub-processor after `action`; a change carries only what differs."""
    action = RecordAction(action)
    subprocessor = session.scalar(select(SubProcessor).where(SubProcessor.slug == slug))
    fields = dict(fields or {})
    unknown = set(fields) - set(RECORD_FIELDS)
    if unknown:
        raise PublishError(f"unknown sub-processor fields: {', '.join(sorted(unknown))}")
    fields = _checked_identifiers(fields)
    if action is RecordAction.ADD:
        try:
            check_slug(slug)
        except ValueError as error:
            raise PublishError(str(error)) from None
        if subprocessor is not None and _is_taken(session, subprocessor):
            raise PublishError(f"sub-processor {slug!r} already exists")
        missing = {"name", "legal_entity", "address", "contact", "purpose",
                   "transfer_mechanism"} - set(fields)
        if missing:
            raise PublishError(f"a new sub-processor needs: {', '.join(sorted(missing))}")
        if subprocessor is None:  # else the slug of a withdrawn addition is free again
            subprocessor = SubProcessor(slug=slug)
            session.add(subprocessor)
        state = {"description": "", "data_categories": [], "countries": [], "website": "",
                 "feature": None, "chain": [], **fields}
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


IDENTIFIER_CHECKS = {"lei": identifiers.check_lei, "parent_lei": identifiers.check_lei,
                     "euid": identifiers.check_euid, "hq_country": identifiers.check_country,
                     "ict_service_type": identifiers.check_service_type}


def _checked_identifiers(fields: dict) -> dict:
    """The DORA identifiers and the chain as they are stored, whoever drafts them (form, CLI, demo)."""
    checked = dict(fields)
    try:
        for name, check in IDENTIFIER_CHECKS.items():
            if checked.get(name):
                checked[name] = check(checked[name])
        if "chain" in checked:
            checked["chain"] = [link.as_dict() for link in check_chain(checked["chain"] or [])]
    except (IdentifierError, ChainError) as error:
        raise PublishError(str(error)) from None
    return checked


def materiality_items(session: Session, change_set: ChangeSet) -> list[ordering.Item]:
    items = [ordering.Item(ordering.ItemKind.DOCUMENT, v.document.title, v.is_material)
             for v in change_set.document_versions]
    for record in change_set.subprocessor_records:
        replaces = False
        if record.action == RecordAction.CHANGE:
            before = reading.previous_record(session, record)
            replaces = before is not None and before.legal_entity != record.legal_entity
        items.append(ordering.Item(ordering.ItemKind(record.action), f"Sub-processor {record.name}",
                                   replaces))
    return items


def derived_materiality(session: Session, change_set: ChangeSet) -> tuple[bool, list[str]]:
    """Whether the items force the change set to be material, and which items do."""
    return ordering.materiality(materiality_items(session, change_set))


def apply_materiality(session: Session, change_set: ChangeSet) -> list[str]:
    """Make the change set material if an item requires it; staff may raise materiality, never lower it."""
    required, reasons = derived_materiality(session, change_set)
    if required and not change_set.is_material:
        change_set.is_material = True
    return reasons


def lock_ordering(session: Session, change_set: ChangeSet) -> None:
    """Serialise the steps that read other change sets to keep version order (schedule, withdraw, a move).

    PostgreSQL: the audit log's transaction lock, which each of these steps takes anyway to append its
    entry (one lock for all, taken before any row lock, so no deadlock). Both: writing this change set
    now checks its revision, and on SQLite takes the database's write lock, so that every read that
    follows sees all committed changes.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": audit.ADVISORY_LOCK_KEY})
    flag_modified(change_set, "status")
    session.flush()


@dataclass(frozen=True)
class Related:
    """Another public change set that changes one of the same documents or sub-processors."""

    change_set: ChangeSet
    subject: str  # what it changes: "version 4 of Privacy Policy"
    is_older: bool  # it comes before this change set in version order
    thing: tuple[str, int]  # the document or sub-processor both change: ("document", id), ...


def related_changes(session: Session, change_set: ChangeSet) -> list[Related]:
    """Public change sets, not withdrawn, sharing a document or sub-processor with this one.

    A document's versions are ordered by number, a sub-processor's records by id (a record is drafted
    from the latest public one, and only one change set not yet public may change a sub-processor);
    a change set not yet public comes after every public one.
    """
    mine_versions = {v.document_id: v for v in change_set.document_versions}
    mine_records = {r.subprocessor_id: r for r in change_set.subprocessor_records}
    related: list[Related] = []
    if mine_versions:
        others = session.scalars(
            select(DocumentVersion).join(DocumentVersion.change_set)
            .where(*reading.PUBLIC, DocumentVersion.document_id.in_(mine_versions),
                   DocumentVersion.change_set_id != change_set.id)
            .order_by(DocumentVersion.number)
            .execution_options(populate_existing=True))
        for other in others:
            mine = mine_versions[other.document_id]
            related.append(Related(other.change_set, f"version {other.number} of {other.document.title}",
                                   mine.number is None or other.number < mine.number,
                                   ("document", other.document_id)))
    if mine_records:
        others = session.scalars(
            select(SubProcessorRecord).join(SubProcessorRecord.change_set)
            .where(*reading.PUBLIC, SubProcessorRecord.subprocessor_id.in_(mine_records),
                   SubProcessorRecord.change_set_id != change_set.id)
            .order_by(SubProcessorRecord.id)
            .execution_options(populate_existing=True))
        for other in others:
            mine = mine_records[other.subprocessor_id]
            related.append(Related(other.change_set,
                                   f"sub-processor {other.name} ({ACTION_WORDS[other.action]})",
                                   other.id < mine.id, ("subprocessor", other.subprocessor_id)))
    return related


def pending_before(session: Session, change_set: ChangeSet, now: datetime) -> list[ordering.Pending]:
    """The older changes of the same documents and sub-processors that are not in force yet.

    A change whose date has come is still not in force while an older change of the same document or
    sub-processor waits (its notice still going out): changes come into force in order. Related
    changes arrive in that order for each document and sub-processor.
    """
    waiting: set[tuple[str, int]] = set()
    pending = []
    for related in related_changes(session, change_set):
        if not related.is_older:
            continue
        if related.thing in waiting or reading.effective_moment(related.change_set, now) > now:
            waiting.add(related.thing)
            pending.append(ordering.Pending(related.change_set.id, related.change_set.title,
                                            related.subject, related.change_set.effective_at))
    return pending


def newer_changes(session: Session, change_set: ChangeSet) -> list[Related]:
    """The public changes that come after this one in version order: each was announced against it."""
    return [r for r in related_changes(session, change_set) if not r.is_older]


def waits_for_older(session: Session, change_set: ChangeSet, now: datetime) -> bool:
    """Whether an older change of one of its documents or sub-processors is not in force yet."""
    return bool(pending_before(session, change_set, now))


def notice_rule(policy: NoticePolicy) -> NoticeRule:
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


def recompute_comparisons(session: Session) -> int:
    """Compute every stored comparison afresh, after the way comparisons are rendered changed;
    returns how many there are. Readers never wait for one: pages only read them."""
    count = 0
    for stored in session.scalars(select(Comparison).order_by(Comparison.id)):
        old, new = session.get(DocumentVersion, stored.old_version_id), session.get(
            DocumentVersion, stored.new_version_id)
        result = compare(old.source_md, new.source_md,
                         old_label=f"Version {old.number}", new_label=f"Version {new.number}")
        stored.redline_html, stored.side_by_side_html = result.redline_html, result.side_by_side_html
        stored.unified_diff = result.unified_diff
        stored.words_inserted, stored.words_deleted = result.words_inserted, result.words_deleted
        stored.blocks_changed = result.blocks_changed
        stored.computed_at = now_utc()
        count += 1
    session.flush()
    return count


def policies_for(session: Session, change_set: ChangeSet) -> list[NoticePolicy]:
    """The notice policies that govern a change set: each document's, and the sub-processor list's."""
    policies = {v.document.notice_policy.id: v.document.notice_policy for v in change_set.document_versions}
    if change_set.subprocessor_records:
        policy = session.scalar(select(NoticePolicy).where(NoticePolicy.key == SUBPROCESSOR_POLICY))
        if policy is not None:
            policies[policy.id] = policy
    return list(policies.values())


@dataclass(frozen=True)
class Earliest:
    """The earliest effective date, and what sets it: the policy with the longest notice and its items,
    or a customer organisation's contractual term when that is longer still."""

    at: datetime
    policy: str | None = None  # None: a non-material change, which may take effect at once
    items: tuple[str, ...] = ()
    organisation: str | None = None  # the organisation whose contract sets the date
    term: str = ""  # its term: "30 calendar days"

    @property
    def reason(self) -> str:
        """What sets the date, as the schedule form and its refusal say it."""
        if self.organisation:
            possessive = "'" if self.organisation.endswith("s") else "'s"
            return f"{self.organisation}{possessive} contract ({self.term})"
        if self.policy:
            return f"{self.policy}: {', '.join(self.items)}"
        return ""


def _governed_items(change_set: ChangeSet, policy: NoticePolicy) -> tuple[str, ...]:
    if policy.key == SUBPROCESSOR_POLICY:
        return tuple(f"sub-processor {r.name} ({ACTION_WORDS[r.action]})"
                     for r in change_set.subprocessor_records)
    return tuple(f"{v.document.title} (new version)" for v in change_set.document_versions
                 if v.document.notice_policy_id == policy.id)


def contract_rule(term: org_rules.Term, policies: list[NoticePolicy]) -> NoticeRule:
    """An organisation's term counted like the policies of the change: business days on their calendars
    (all of them), in their time zone."""
    calendars = tuple(sorted({code for p in policies for code in p.calendars}))
    return NoticeRule(length=term.length, unit=term.unit, calendars=calendars,
                      timezone=policies[0].timezone)


def earliest_explained(session: Session, change_set: ChangeSet, notice_completed_at: datetime, *,
                       is_material: bool | None = None) -> Earliest:
    """The earliest moment the change may take effect if its notice completes at the given time.

    A non-material change may take effect at once; a material one waits for the longest notice
    period among the policies that govern it and the contractual terms of the customer organisations
    on record when it was announced (before that: all of them). The longest policy and its items are
    named, and the organisation and its term when a contract sets the date (on a tie the policy does).
    `is_material` overrides the stored flag (a page showing what scheduling will do).
    """
    if not (change_set.is_material if is_material is None else is_material):
        return Earliest(notice_completed_at)
    policies = sorted(policies_for(session, change_set), key=lambda p: p.name)
    candidates = [(earliest_effective(notice_completed_at, notice_rule(p)), p) for p in policies]
    if not candidates:
        return Earliest(notice_completed_at)
    at, policy = max(candidates, key=lambda pair: (pair[0], pair[1].name))
    earliest = Earliest(at, policy.name, _governed_items(change_set, policy))
    contracts = [org_rules.Candidate(earliest_effective(notice_completed_at, contract_rule(term, policies)),
                                     organisation.name, term.describe())
                 for organisation, term in organisations.terms(session, change_set.published_at)]
    best = org_rules.longest([org_rules.Candidate(at, ""), *contracts])
    if best.label:
        earliest = Earliest(best.at, policy.name, earliest.items, best.label, best.detail)
    return earliest


def earliest_effective_for(session: Session, change_set: ChangeSet,
                           notice_completed_at: datetime) -> datetime:
    return earliest_explained(session, change_set, notice_completed_at).at


def objection_deadline_for(session: Session, change_set: ChangeSet, notice_at: datetime) -> datetime | None:
    """The latest objection deadline among the policies of the change and, for a material change, the
    customer organisations' contractual objection windows (counted in the policies' time zone)."""
    policies = policies_for(session, change_set)
    deadlines = [d for p in policies if (d := objection_deadline(notice_at, notice_rule(p)))]
    if change_set.is_material and policies:
        zone = policies[0].timezone
        windows = [NoticeRule(length=days, unit="calendar_days", calendars=(), timezone=zone,
                              objection_days=days)
                   for _organisation, days in organisations.objection_windows(session,
                                                                               change_set.published_at)]
        deadlines += [objection_deadline(notice_at, rule) for rule in windows]
    return max(deadlines) if deadlines else None


def publish(session: Session, change_set: ChangeSet, *, published_at: datetime,
            effective_at: datetime, notice_completed_at: datetime | None,
            effective_new_customers_at: datetime | None = None,
            actor: str = "system", actor_id: int | None = None,
            now: datetime | None = None) -> ChangeSet:
    """Make a change set public: its notice starts at `published_at`.

    `notice_completed_at` is None when the notice is about to be sent (the dispatcher calls
    `complete_notice` when it is done); a past time records a notice given before (demo, import).
    """
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
    change_set.planned_effective_at = effective_at
    change_set.effective_new_customers_at = effective_new_customers_at
    change_set.notice_completed_at = notice_completed_at
    if notice_completed_at is None:
        change_set.status = ChangeStatus.SCHEDULED
    else:
        change_set.status = _status_after_notice(session, change_set, now)
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
    change_set.objection_deadline_at = objection_deadline_for(
        session, change_set, notice_completed_at or published_at
    )
    site.touch(session, now)
    audit.record(session, actor=actor, actor_id=actor_id, action="change_set.publish",
                 object_type="change_set", object_id=change_set.id,
                 after={"published_at": published_at.isoformat(),
                        "effective_at": effective_at.isoformat(), "title": change_set.title})
    session.flush()
    return change_set


def _status_after_notice(session: Session, change_set: ChangeSet, now: datetime) -> str:
    if change_set.effective_at <= now and not waits_for_older(session, change_set, now):
        return ChangeStatus.EFFECTIVE
    return ChangeStatus.IN_NOTICE


def _move_effective_date(session: Session, change_set: ChangeSet, new_effective_at: datetime, *,
                         reason: str, now: datetime) -> list[ChangeSet]:
    """Move the date, and every newer change of the same documents or sub-processors that would no
    longer come strictly after it, each recorded, audited, mailed to approvers and told to those
    already notified (a date-moved notice) like this one."""
    from registry.services import endpoints, mail, notices

    lock_ordering(session, change_set)
    before = change_set.effective_at
    change_set.effective_at = new_effective_at
    change_set.effective_moved_at = now
    if change_set.effective_new_customers_at and change_set.effective_new_customers_at > new_effective_at:
        change_set.effective_new_customers_at = new_effective_at
    session.add(ChangeSetEvent(change_set=change_set, at=now, actor="system", action="effective_moved",
                               note=f"{reason}: from {before.isoformat()} to {new_effective_at.isoformat()}"))
    audit.record(session, actor="system", action="change_set.effective_moved", object_type="change_set",
                 object_id=change_set.id, at=now,
                 before={"effective_at": before.isoformat()},
                 after={"effective_at": new_effective_at.isoformat(), "reason": reason})
    for approver in session.scalars(select(User).where(User.role == Role.APPROVER, User.is_enabled)):
        mail.queue(session, to=approver.email, template="effective_date_moved", now=now, context={
            "change_set_id": change_set.id, "title": change_set.title, "reason": reason,
            "before": before.isoformat(), "after": new_effective_at.isoformat(),
        })
    notices.effective_date_moved(session, change_set, before=before, reason=reason, now=now)
    endpoints.change_event(session, change_set, "change.date_moved", now=now, reason=reason,
                           previous_effective_at=before.isoformat())
    moved = [change_set]
    newer = {r.change_set.id: r.change_set for r in newer_changes(session, change_set)}
    for other in sorted(newer.values(), key=lambda c: (c.effective_at, c.id)):
        if other.status not in (ChangeStatus.SCHEDULED, ChangeStatus.IN_NOTICE):
            continue
        to = ordering.cascaded_date(before, new_effective_at, other.effective_at)
        if to is not None:
            moved += _move_effective_date(
                session, other, to, now=now,
                reason=f"it follows change set #{change_set.id} ({change_set.title}), whose date moved")
    return moved


def complete_notice(session: Session, change_set: ChangeSet, *, completed_at: datetime,
                    now: datetime | None = None) -> ChangeSet:
    """The notice went out (every email accounted for, the feed entry published): the period starts.

    If the period would not have elapsed by the scheduled date, the date moves to the earliest one
    the rule allows; a material change never takes effect without its full notice.
    """
    now = now or now_utc()
    if change_set.notice_completed_at is not None or change_set.status == ChangeStatus.WITHDRAWN:
        return change_set
    change_set.notice_completed_at = completed_at
    earliest = earliest_effective_for(session, change_set, completed_at)
    if change_set.effective_at < earliest:
        _move_effective_date(session, change_set, earliest, reason="the notice completed later than planned",
                             now=now)
    change_set.objection_deadline_at = objection_deadline_for(session, change_set, completed_at)
    previous = change_set.status
    change_set.status = _status_after_notice(session, change_set, now)
    session.add(ChangeSetEvent(change_set=change_set, at=now, actor="system", action="notice_completed",
                               from_status=previous, to_status=change_set.status,
                               note=f"notice completed at {completed_at.isoformat()}"))
    audit.record(session, actor="system", action="change_set.notice_completed", object_type="change_set",
                 object_id=change_set.id, at=now,
                 after={"notice_completed_at": completed_at.isoformat(),
                        "effective_at": change_set.effective_at.isoformat()})
    site.touch(session, now)
    session.flush()
    return change_set


def postpone_overdue(session: Session, *, now: datetime | None = None) -> list[ChangeSet]:
    """Scheduled material changes whose notice is still going out and could no longer make their date.

    Even if the notice completed this instant, the period would end after the scheduled date, so
    the date moves now, before it passes, and the public pages say so.
    """
    now = now or now_utc()
    moved = []
    pending = list(session.scalars(select(ChangeSet).where(
        ChangeSet.status == ChangeStatus.SCHEDULED, ChangeSet.notice_completed_at.is_(None),
        ChangeSet.is_material.is_(True)).order_by(ChangeSet.effective_at, ChangeSet.id)))
    for change_set in pending:
        earliest = earliest_effective_for(session, change_set, now)
        if change_set.effective_at < earliest:
            moved += [c for c in _move_effective_date(session, change_set, earliest, now=now,
                                                      reason="the notice is still being sent")
                      if c not in moved]
    if moved:
        site.touch(session, now)
    return moved


def record_effective(session: Session, *, now: datetime | None = None) -> list[ChangeSet]:
    """Record the transition of every change now in force (the public pages never wait for this)."""
    from registry.services import endpoints

    now = now or now_utc()
    candidates = list(session.scalars(select(ChangeSet).where(
        ChangeSet.status == ChangeStatus.IN_NOTICE, ChangeSet.effective_at <= now)
        .order_by(ChangeSet.effective_at, ChangeSet.id)))
    # A newer change never takes effect before an older one of the same document or entry.
    due = [c for c in candidates if not waits_for_older(session, c, now)]
    for change_set in due:
        change_set.status = ChangeStatus.EFFECTIVE
        session.add(ChangeSetEvent(change_set=change_set, at=now, actor="system", action="transition",
                                   from_status=ChangeStatus.IN_NOTICE, to_status=ChangeStatus.EFFECTIVE))
        audit.record(session, actor="system", action="change_set.effective", object_type="change_set",
                     object_id=change_set.id, at=now,
                     after={"effective_at": change_set.effective_at.isoformat()})
        endpoints.change_event(session, change_set, "change.effective", now=now)
    session.flush()
    return due
