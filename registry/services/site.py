"""The public-content revision that cached pages are keyed on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import ChangeSet, ChangeStatus, SiteState


@dataclass(frozen=True)
class ContentState:
    revision: int
    changed_at: datetime
    last_boundary: datetime | None   # the latest effective moment already passed
    next_boundary: datetime | None   # the next moment at which the public registry changes by itself


def touch(session: Session, at: datetime | None = None) -> None:
    """Call whenever public content changes."""
    state = session.get(SiteState, 1)
    if state is None:
        state = SiteState(id=1, revision=0)
        session.add(state)
    state.revision = (state.revision or 0) + 1
    state.changed_at = at or now_utc()
    session.flush()


def content_state(session: Session, now: datetime) -> ContentState:
    state = session.get(SiteState, 1)
    public = (ChangeSet.published_at.is_not(None), ChangeSet.status != ChangeStatus.WITHDRAWN)
    last_boundary = session.scalar(
        select(func.max(ChangeSet.effective_at)).where(*public, ChangeSet.effective_at <= now)
    )
    next_boundary = session.scalar(
        select(func.min(ChangeSet.effective_at)).where(*public, ChangeSet.effective_at > now)
    )
    return ContentState(
        revision=state.revision if state else 0,
        changed_at=state.changed_at if state else now,
        last_boundary=last_boundary,
        next_boundary=next_boundary,
    )
