"""Version order and materiality: the pure rules that keep the registry from showing the wrong version.

Versions of one document (and changes to one sub-processor) come into force in the order they were
published, each strictly after the one before: the notice of each was a comparison with the one before,
so any other order would put in force a text customers were never shown a redline for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from registry.domain.clock import start_of_day

# Where a date must move behind an older change that already sat at or after it (data from before
# the ordering rule): the smallest step that still puts the newer change strictly after the older.
MINIMUM_GAP = timedelta(minutes=1)


@dataclass(frozen=True)
class Pending:
    """An older public change of the same document or sub-processor, not yet in force."""

    change_set_id: int
    title: str
    subject: str  # what it changes, as staff read it: "version 4 of Privacy Policy"
    effective_at: datetime


def crossings(pending: Iterable[Pending], proposed: datetime) -> list[Pending]:
    """The older pending changes that a newer change effective at `proposed` would overtake.

    The newer one must come strictly later: at the same instant the older would never be in force,
    and the newer one's notice was a comparison with it.
    """
    return sorted((p for p in pending if p.effective_at >= proposed),
                  key=lambda p: (p.effective_at, p.change_set_id))


def describe_crossings(crossed: Sequence[Pending], describe_moment) -> str:
    """One sentence per crossed change, for the refusal: which change set, what, and when."""
    return "; ".join(f"change set #{p.change_set_id} ({p.title}) puts {p.subject} in force on "
                     f"{describe_moment(p.effective_at)}" for p in crossed)


def cascaded_date(older_before: datetime, older_after: datetime, newer_at: datetime) -> datetime | None:
    """Where a newer change must move when the older one it follows moves from one date to another.

    None when it is still strictly later. Otherwise it keeps the gap it had behind the older change
    (a change planned for the week after keeps being the week after, at the same time of day).
    """
    if newer_at > older_after:
        return None
    gap = newer_at - older_before
    return older_after + (gap if gap > timedelta(0) else MINIMUM_GAP)


def suggested_date(earliest: datetime, pending: Iterable[datetime], timezone: str) -> datetime:
    """The date the schedule form offers: the earliest allowed one, or, when an older pending change
    comes at or after it, the next midnight in the legal zone after the latest of those (a date
    that would be refused is never offered)."""
    latest = max(pending, default=None)
    if latest is None or latest < earliest:
        return earliest
    return start_of_day(latest.astimezone(ZoneInfo(timezone)).date() + timedelta(days=1), timezone)


def in_force_prefix(moments: Sequence[datetime], now: datetime) -> int:
    """How many versions, in version order, are in force at `now`, given when each may take effect.

    A version is in force only when every older one is: a newer version whose date has come while an
    older one still waits (its notice is still going out) waits too.
    """
    count = 0
    for moment in moments:
        if moment > now:
            break
        count += 1
    return count


class ItemKind(StrEnum):
    DOCUMENT = "document"
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"


@dataclass(frozen=True)
class Item:
    """One item of a change set as far as materiality goes.

    `is_material` is the staff's mark for a document version; for a sub-processor change it says
    whether the change replaces the legal entity that processes the data.
    """

    kind: ItemKind
    label: str
    is_material: bool = False


def materiality(items: Iterable[Item]) -> tuple[bool, list[str]]:
    """Whether the change set must be material, and which items make it so.

    A material document version makes the whole set material: it cannot take effect without the
    notice its document promises. Adding or replacing a sub-processor is notifiable under GDPR
    Art. 28(2), whatever staff call it.
    """
    reasons = []
    for item in items:
        if item.kind is ItemKind.DOCUMENT and item.is_material:
            reasons.append(f"{item.label}: the new version is marked material")
        elif item.kind is ItemKind.ADD:
            reasons.append(f"{item.label}: a new sub-processor (GDPR Art. 28(2) requires notice)")
        elif item.kind is ItemKind.CHANGE and item.is_material:
            reasons.append(f"{item.label}: the legal entity is replaced (GDPR Art. 28(2) requires notice)")
    return bool(reasons), reasons
