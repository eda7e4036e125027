"""The legal staff's use cases on a change set: draft, review, approve, schedule, withdraw, comment.

Every step records a ChangeSetEvent (who, when, from and to which status) and an audit entry.
Four eyes: whoever created or edited a change set may never approve or schedule it.
Editing a change set that is in review or approved sends it back to draft, so that an approval
always covers exactly what will be published; every step bumps the change set's revision, so a step
taken on what someone else has just changed is refused instead of landing on it.
Versions of a document (and changes to a sub-processor) take effect in the order they were published:
scheduling one before an older pending one is refused unless staff supersede (withdraw) the older one.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from registry.domain import ordering
from registry.domain.clock import now_utc
from registry.models import (
    ChangeSet,
    ChangeSetEvent,
    ChangeStatus,
    Comment,
    Document,
    DocumentVersion,
    RecordAction,
    SubProcessor,
    SubProcessorRecord,
    User,
)
from registry.services import audit, endpoints, inbox, notices, publishing, site

EDITABLE = (ChangeStatus.DRAFT, ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED)
# Actions that make someone an author of the change set, and so never its approver.
AUTHORING = ("created", "edited")
MAX_COMMENT = 10_000


STALE = "This change set was changed by someone else meanwhile; reload and try again."


class WorkflowError(ValueError):
    """A step is not allowed as asked; the message tells staff why, `field` which input it concerns."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def _refuses_stale(step):
    """A step that would write over a change set someone else changed since it was read is refused."""
    @functools.wraps(step)
    def guarded(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except StaleDataError:
            raise WorkflowError(STALE) from None
    return guarded


@dataclass(frozen=True)
class TickResult:
    postponed: list[ChangeSet]
    effective: list[ChangeSet]

    def lines(self) -> list[str]:
        return ([f"postponed change set {c.id} ({c.title}) to {c.effective_at.isoformat()}"
                 for c in self.postponed]
                + [f"change set {c.id} ({c.title}) is now effective" for c in self.effective])


def _record(session: Session, change_set: ChangeSet, actor: User, action: str, *, now: datetime,
            to_status: str | None = None, note: str = "", audit_after: dict | None = None,
            from_status: str | None = None) -> None:
    """One event and one audit entry; a status change when `to_status` is given."""
    from_status = from_status or change_set.status
    if to_status is not None:
        change_set.status = to_status
    # Even an edit that changes no column of the change set (a document version's text) bumps its
    # revision, so that an approval read before the edit cannot be written after it.
    flag_modified(change_set, "status")
    session.add(ChangeSetEvent(change_set=change_set, at=now, actor_id=actor.id, actor=actor.email,
                               action=action, from_status=from_status if to_status else None,
                               to_status=to_status, note=note))
    after = {"status": change_set.status, **(audit_after or {})}
    if note:
        after["note"] = note
    audit.record(session, actor=actor.email, actor_id=actor.id, action=f"change_set.{action}",
                 object_type="change_set", object_id=change_set.id, at=now,
                 before={"status": from_status}, after=after)
    session.flush()


def authors(change_set: ChangeSet) -> set[int]:
    """Everyone who created or edited the change set."""
    ids = {e.actor_id for e in change_set.events if e.action in AUTHORING and e.actor_id is not None}
    if change_set.created_by_id is not None:
        ids.add(change_set.created_by_id)
    return ids


def is_author(change_set: ChangeSet, user: User) -> bool:
    return user.id in authors(change_set)


def _require_status(change_set: ChangeSet, *allowed: str, doing: str) -> None:
    if change_set.status not in allowed:
        names = " or ".join(s.replace("_", " ") for s in allowed)
        raise WorkflowError(f"Only a change set that is {names} can be {doing}; this one is "
                            f"{change_set.status.replace('_', ' ')}.")


def _four_eyes(change_set: ChangeSet, actor: User, doing: str) -> None:
    if is_author(change_set, actor):
        raise WorkflowError(f"You created or edited this change set, so you cannot {doing} it: "
                            "another approver must (four-eyes rule).")


def _edited(session: Session, change_set: ChangeSet, actor: User, what: str, now: datetime) -> None:
    """Record an edit; an edit after submission sends the change set back to draft."""
    _require_status(change_set, *EDITABLE, doing="edited")
    back = ChangeStatus.DRAFT if change_set.status != ChangeStatus.DRAFT else None
    note = what + (" (sent back to draft: it must be submitted and approved again)" if back else "")
    _record(session, change_set, actor, "edited", now=now, to_status=back, note=note)


@_refuses_stale
def create(session: Session, *, title: str, summary: str, is_material: bool, actor: User,
           now: datetime | None = None) -> ChangeSet:
    now = now or now_utc()
    change_set = publishing.create_change_set(session, title=title, summary=summary,
                                              is_material=is_material, created_by_id=actor.id)
    change_set.created_at = now
    _record(session, change_set, actor, "created", now=now,
            audit_after={"title": title, "is_material": is_material})
    return change_set


def materiality(session: Session, change_set: ChangeSet) -> tuple[bool, list[str]]:
    """Whether the items make the change set material, and which items do (for the forms and pages)."""
    return publishing.derived_materiality(session, change_set)


@_refuses_stale
def edit_details(session: Session, change_set: ChangeSet, *, title: str, summary: str,
                 is_material: bool, actor: User, now: datetime | None = None) -> ChangeSet:
    """Staff may raise materiality; a material item keeps the set material whatever the form says."""
    now = now or now_utc()
    _require_status(change_set, *EDITABLE, doing="edited")
    change_set.title, change_set.summary, change_set.is_material = title, summary, is_material
    publishing.apply_materiality(session, change_set)
    _edited(session, change_set, actor, "title, summary or materiality changed", now)
    return change_set


@_refuses_stale
def save_document_version(session: Session, change_set: ChangeSet, document: Document, *,
                          source_md: str, summary: str, is_material: bool, actor: User,
                          now: datetime | None = None) -> DocumentVersion:
    """Add the document's new version to the change set, or replace the one it already has."""
    now = now or now_utc()
    _require_status(change_set, *EDITABLE, doing="edited")
    version = next((v for v in change_set.document_versions if v.document_id == document.id), None)
    if version is None:
        version = publishing.draft_document_version(session, change_set, document, source_md=source_md,
                                                    summary=summary, is_material=is_material,
                                                    author_id=actor.id)
        what = f"new version of {document.title} added"
    else:
        version.source_md, version.summary, version.is_material = source_md, summary, is_material
        version.author_id = actor.id
        what = f"new version of {document.title} edited"
    publishing.apply_materiality(session, change_set)
    _edited(session, change_set, actor, what, now)
    return version


def _open_record_elsewhere(session: Session, change_set: ChangeSet, slug: str) -> ChangeSet | None:
    """Another change set not yet public that already changes this sub-processor."""
    return session.scalar(
        select(ChangeSet).join(SubProcessorRecord, SubProcessorRecord.change_set_id == ChangeSet.id)
        .join(SubProcessor, SubProcessor.id == SubProcessorRecord.subprocessor_id)
        .where(SubProcessor.slug == slug, ChangeSet.id != change_set.id,
               ChangeSet.published_at.is_(None), ChangeSet.status != ChangeStatus.WITHDRAWN)
        .limit(1)
    )


def _discard_record(session: Session, record: SubProcessorRecord) -> None:
    subprocessor = record.subprocessor
    record.change_set.subprocessor_records.remove(record)
    session.delete(record)
    session.flush()
    # A sub-processor only this draft added leaves no trace, so its slug can be used again.
    if record.action == RecordAction.ADD and not session.scalar(
        select(SubProcessorRecord.id).where(SubProcessorRecord.subprocessor_id == subprocessor.id).limit(1)
    ):
        session.delete(subprocessor)
        session.flush()


@_refuses_stale
def save_subprocessor_change(session: Session, change_set: ChangeSet, slug: str, action: str, *,
                             fields: dict, summary: str, actor: User,
                             now: datetime | None = None) -> SubProcessorRecord | None:
    """Add, change or remove a sub-processor; a change set holds at most one record per sub-processor.

    `fields` is the full state after the change (for a removal: the state being removed), so the
    record never depends on which earlier record happens to be the latest.
    """
    now = now or now_utc()
    _require_status(change_set, *EDITABLE, doing="edited")
    other = _open_record_elsewhere(session, change_set, slug)
    if other is not None:
        raise WorkflowError(f"Change set #{other.id} ({other.title}) already changes {slug!r}; "
                            "finish or withdraw it first.")
    existing = next((r for r in change_set.subprocessor_records if r.subprocessor.slug == slug), None)
    if existing is not None:
        was_added = existing.action == RecordAction.ADD
        _discard_record(session, existing)
        if was_added and action == RecordAction.REMOVE:
            # Removing a sub-processor this change set was adding just drops the addition.
            _edited(session, change_set, actor, f"addition of sub-processor {slug!r} dropped", now)
            return None
        if was_added:
            # Editing a sub-processor this change set adds is still an addition.
            action = RecordAction.ADD
    try:
        record = publishing.draft_subprocessor_change(session, change_set, slug, action,
                                                      fields=fields, summary=summary)
    except publishing.PublishError as error:
        raise WorkflowError(str(error)) from None
    verb = {"add": "added", "change": "changed", "remove": "removed"}[record.action]
    publishing.apply_materiality(session, change_set)
    _edited(session, change_set, actor, f"sub-processor {record.name} {verb}", now)
    return record


@_refuses_stale
def discard_item(session: Session, change_set: ChangeSet, *, version_id: int | None = None,
                 record_id: int | None = None, actor: User, now: datetime | None = None) -> None:
    """Take a document version or a sub-processor change out of a change set not yet public."""
    now = now or now_utc()
    _require_status(change_set, *EDITABLE, doing="edited")
    version = next((v for v in change_set.document_versions if v.id == version_id), None)
    record = next((r for r in change_set.subprocessor_records if r.id == record_id), None)
    if version is not None:
        what = f"new version of {version.document.title} taken out"
        change_set.document_versions.remove(version)
        session.delete(version)
        session.flush()
    elif record is not None:
        what = f"change to sub-processor {record.name} taken out"
        _discard_record(session, record)
    else:
        raise WorkflowError("That item is not part of this change set.")
    _edited(session, change_set, actor, what, now)


@_refuses_stale
def submit(session: Session, change_set: ChangeSet, *, actor: User, now: datetime | None = None) -> None:
    _require_status(change_set, ChangeStatus.DRAFT, doing="submitted for review")
    if not (change_set.document_versions or change_set.subprocessor_records):
        raise WorkflowError("Add a document version or a sub-processor change before submitting.")
    now = now or now_utc()
    _record(session, change_set, actor, "submitted", now=now, to_status=ChangeStatus.IN_REVIEW)
    inbox.change_set_submitted(session, change_set, actor=actor, now=now)


@_refuses_stale
def approve(session: Session, change_set: ChangeSet, *, actor: User, now: datetime | None = None) -> None:
    _require_status(change_set, ChangeStatus.IN_REVIEW, doing="approved")
    _four_eyes(change_set, actor, "approve")
    _record(session, change_set, actor, "approved", now=now or now_utc(), to_status=ChangeStatus.APPROVED)


@_refuses_stale
def return_to_draft(session: Session, change_set: ChangeSet, *, actor: User, note: str = "",
                    now: datetime | None = None) -> None:
    """Request changes (or take back a submission): in review or approved -> draft."""
    _require_status(change_set, ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED, doing="returned to draft")
    _record(session, change_set, actor, "returned", now=now or now_utc(), to_status=ChangeStatus.DRAFT,
            note=note)


def earliest_allowed(session: Session, change_set: ChangeSet, now: datetime) -> datetime:
    """The earliest effective date for a notice sent now (material if an item requires it)."""
    return _earliest(session, change_set, now).at


def _earliest(session: Session, change_set: ChangeSet, now: datetime) -> publishing.Earliest:
    required, _reasons = publishing.derived_materiality(session, change_set)
    return publishing.earliest_explained(session, change_set, now,
                                         is_material=change_set.is_material or required)


def describe_moment(moment: datetime, legal_timezone: str) -> str:
    local = moment.astimezone(ZoneInfo(legal_timezone))
    utc = moment.astimezone(ZoneInfo("UTC"))
    return (f"{local.day} {local:%B %Y, %H:%M} {local:%Z} ({legal_timezone}), "
            f"{utc:%Y-%m-%d %H:%M} UTC")


@dataclass(frozen=True)
class PendingChange:
    """An older change set the schedule form must respect: its date, and what superseding it withdraws."""

    change_set: ChangeSet
    subjects: list[str]  # what of it this change set follows: "version 4 of Privacy Policy"
    other_items: list[str]  # what else superseding it would withdraw


@dataclass(frozen=True)
class Outlook:
    """What the schedule page shows before staff choose a date."""

    earliest: publishing.Earliest
    pending: list[PendingChange]
    material_reasons: list[str]


def _items_of(change_set: ChangeSet) -> list[str]:
    return ([f"version {v.number} of {v.document.title}" for v in change_set.document_versions]
            + [f"sub-processor {r.name} ({publishing.ACTION_WORDS[r.action]})"
               for r in change_set.subprocessor_records])


def outlook(session: Session, change_set: ChangeSet, now: datetime) -> Outlook:
    """The earliest date and what sets it, and the older pending changes a date must come after."""
    _required, reasons = publishing.derived_materiality(session, change_set)
    subjects: dict[int, list[str]] = {}
    for item in publishing.pending_before(session, change_set, now):
        subjects.setdefault(item.change_set_id, []).append(item.subject)
    pending = []
    for change_set_id, followed in subjects.items():
        other = session.get(ChangeSet, change_set_id)
        pending.append(PendingChange(other, followed, [i for i in _items_of(other) if i not in followed]))
    pending.sort(key=lambda p: (p.change_set.effective_at, p.change_set.id))
    return Outlook(_earliest(session, change_set, now), pending, reasons)


def _supersede(session: Session, change_set: ChangeSet, crossed: list[ordering.Pending],
               confirmed: Collection[int], *, actor: User, legal_timezone: str, now: datetime) -> list[int]:
    """Withdraw the older changes a date overtakes, if staff confirmed exactly those; newest first,
    so that no withdrawn change leaves a newer one announced against it."""
    describe = functools.partial(describe_moment, legal_timezone=legal_timezone)
    ids = sorted({p.change_set_id for p in crossed})
    missing = [i for i in ids if i not in set(confirmed)]
    if missing:
        raise WorkflowError(
            "Versions take effect in order, and this date comes before "
            f"{ordering.describe_crossings(crossed, describe)}. Choose a later date, or supersede "
            f"(withdraw) change set{'s' if len(ids) > 1 else ''} {', '.join(f'#{i}' for i in ids)}.",
            field="effective_at")
    changed_here = {r.subprocessor_id for r in change_set.subprocessor_records}
    others = sorted((session.get(ChangeSet, i) for i in ids), key=lambda c: (c.effective_at, c.id),
                    reverse=True)
    for other in others:
        added = [r for r in other.subprocessor_records
                 if r.action == "add" and r.subprocessor_id in changed_here]
        if added:
            raise WorkflowError(f"Change set #{other.id} adds sub-processor {added[0].name}, which this "
                                "change set changes: it cannot be superseded; choose a later date.",
                                field="supersede")
        withdraw(session, other, actor=actor, note=f"superseded by change set #{change_set.id}", now=now)
    return ids


@_refuses_stale
def schedule(session: Session, change_set: ChangeSet, *, effective_at: datetime,
             effective_new_customers_at: datetime | None = None, actor: User, legal_timezone: str,
             supersede: Collection[int] = (), now: datetime | None = None) -> ChangeSet:
    """Approved -> public with its notice starting now: the outbox is written in this transaction.

    `supersede` names the older pending change sets staff agreed to withdraw if the date comes before
    them; the new version's notice and redline are then against the version in force before them.
    """
    now = now or now_utc()
    _require_status(change_set, ChangeStatus.APPROVED, doing="scheduled")
    _four_eyes(change_set, actor, "schedule")
    publishing.lock_ordering(session, change_set)
    publishing.apply_materiality(session, change_set)
    earliest = publishing.earliest_explained(session, change_set, now)
    if effective_at < earliest.at:
        because = f" (set by {earliest.reason})" if earliest.reason else ""
        raise WorkflowError(
            f"The effective date is too early: with a notice sent now, the earliest allowed effective "
            f"date is {describe_moment(earliest.at, legal_timezone)}{because}.", field="effective_at")
    if effective_new_customers_at is not None and not now <= effective_new_customers_at <= effective_at:
        raise WorkflowError("The date for new customers must lie between now and the effective date "
                            "for existing customers.", field="effective_new_customers_at")
    crossed = ordering.crossings(publishing.pending_before(session, change_set, now), effective_at)
    superseded = _supersede(session, change_set, crossed, supersede, actor=actor,
                            legal_timezone=legal_timezone, now=now) if crossed else []
    approved_status = change_set.status
    try:
        publishing.publish(session, change_set, published_at=now, effective_at=effective_at,
                           notice_completed_at=None, effective_new_customers_at=effective_new_customers_at,
                           actor=actor.email, actor_id=actor.id, now=now)
    except publishing.PublishError as error:
        raise WorkflowError(str(error)) from None
    note = f"effective {describe_moment(effective_at, legal_timezone)}"
    if superseded:
        note += "; supersedes " + ", ".join(f"change set #{i}" for i in superseded)
    _record(session, change_set, actor, "scheduled", now=now, to_status=change_set.status,
            from_status=approved_status, note=note,
            audit_after={"effective_at": effective_at.isoformat(),
                         "effective_new_customers_at": effective_new_customers_at.isoformat()
                         if effective_new_customers_at else None,
                         "is_material": change_set.is_material, "superseded": superseded})
    # With nobody to notify the notice completes at once, and its own event follows this one.
    notices.start_notice(session, change_set, now=now)
    endpoints.change_event(session, change_set, "change.announced", now=now)
    return change_set


@_refuses_stale
def withdraw(session: Session, change_set: ChangeSet, *, actor: User, note: str = "",
             now: datetime | None = None) -> None:
    """Withdraw before it takes effect; a public change set disappears from the public pages.

    An announced change needs a reason: customers read it in the withdrawal notice, the feeds and the
    change log.

    A public change that a newer public one was announced against is refused: withdrawing it would put
    the newer one in force after a version customers never had. Withdraw the newer one first.
    """
    now = now or now_utc()
    if change_set.status in (ChangeStatus.WITHDRAWN, ChangeStatus.EFFECTIVE):
        raise WorkflowError(f"A change set that is {change_set.status} cannot be withdrawn.")
    in_force = change_set.in_force_from()
    if (change_set.published_at is not None and in_force is not None and in_force <= now
            and not publishing.waits_for_older(session, change_set, now)):
        raise WorkflowError("This change set has already taken effect and cannot be withdrawn.")
    if change_set.published_at is not None and not note.strip():
        raise WorkflowError("Give the reason for withdrawing: the withdrawal notice, the feeds and the "
                            "change log tell customers why.", field="note")
    if change_set.published_at is not None:
        publishing.lock_ordering(session, change_set)
        newer = publishing.newer_changes(session, change_set)
        if newer:
            first = newer[0]
            raise WorkflowError(f"Change set #{first.change_set.id} ({first.change_set.title}) puts "
                                f"{first.subject} in force after this one, and its notice compared it with "
                                "this one: withdraw it first.")
    change_set.withdrawn_at = now
    _record(session, change_set, actor, "withdrawn", now=now, to_status=ChangeStatus.WITHDRAWN, note=note)
    if change_set.published_at is not None:
        notices.cancel_unsent(session, change_set, now=now)
        notices.start_withdrawal_notice(session, change_set, now=now)
        endpoints.change_event(session, change_set, "change.withdrawn", now=now, reason=note)
        site.touch(session, now)


@_refuses_stale
def comment(session: Session, change_set: ChangeSet, *, body: str, actor: User,
            now: datetime | None = None) -> Comment:
    now = now or now_utc()
    body = body.strip()
    if not body:
        raise WorkflowError("A comment cannot be empty.")
    if len(body) > MAX_COMMENT:
        raise WorkflowError(f"A comment can be at most {MAX_COMMENT} characters.")
    if "\x00" in body:
        raise WorkflowError("A comment cannot contain NUL characters.")
    entry = Comment(change_set=change_set, author_id=actor.id, created_at=now, body=body)
    session.add(entry)
    audit.record(session, actor=actor.email, actor_id=actor.id, action="change_set.comment",
                 object_type="change_set", object_id=change_set.id, at=now, after={"body": body})
    session.flush()
    inbox.comment_posted(session, change_set, body=body, actor=actor, now=now)
    return entry


def tick(session: Session, now: datetime | None = None) -> TickResult:
    """The periodic job: move dates that can no longer be met, record changes now in force."""
    now = now or now_utc()
    postponed = publishing.postpone_overdue(session, now=now)
    effective = publishing.record_effective(session, now=now)
    return TickResult(postponed=postponed, effective=effective)
