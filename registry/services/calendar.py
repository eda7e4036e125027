"""The public change sets a calendar shows, as plain values for registry.domain.calendar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.domain import calendar
from registry.models import ChangeSet, ChangeStatus, Document, DocumentVersion, Notice, SubProcessorRecord

# The newest this many changes by effective date; a calendar client downloads the whole file each time.
MAX_CHANGES = 500


def changes(session: Session, now: datetime, url_of: Callable[[ChangeSet], str], *,
            document: Document | None = None, subprocessors: bool = False) -> list[calendar.Change]:
    """Announced changes (their notice has started), withdrawn ones included: they show as cancelled."""
    query = (select(ChangeSet)
             .where(ChangeSet.published_at.is_not(None), ChangeSet.published_at <= now,
                    ChangeSet.effective_at.is_not(None))
             .order_by(ChangeSet.effective_at.desc(), ChangeSet.id.desc()).limit(MAX_CHANGES))
    if document is not None:
        query = query.where(ChangeSet.id.in_(
            select(DocumentVersion.change_set_id).where(DocumentVersion.document_id == document.id)))
    if subprocessors:
        query = query.where(ChangeSet.id.in_(select(SubProcessorRecord.change_set_id)))
    found = list(session.scalars(query))
    moves = dict(session.execute(
        select(Notice.change_set_id, func.count()).where(
            Notice.change_set_id.in_([c.id for c in found]), Notice.kind == "date_moved")
        .group_by(Notice.change_set_id)).all()) if found else {}
    result = []
    for change_set in found:
        withdrawn = change_set.status == ChangeStatus.WITHDRAWN
        stamps = [change_set.published_at, change_set.effective_moved_at,
                  change_set.withdrawn_at if withdrawn else None]
        result.append(calendar.Change(
            id=change_set.id, title=change_set.title, url=url_of(change_set),
            effective_at=change_set.effective_at, objection_deadline_at=change_set.objection_deadline_at,
            moves=moves.get(change_set.id, 0), is_withdrawn=withdrawn,
            updated_at=max(s for s in stamps if s is not None)))
    return result
