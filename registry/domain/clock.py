"""Aware-UTC time helpers, so that no naive datetime ever exists in the app."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def now_utc() -> datetime:
    return datetime.now(UTC)


def start_of_day(day: date, timezone: str) -> datetime:
    """Midnight of a calendar day in the given zone, in UTC."""
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


def end_of_day(day: date, timezone: str) -> datetime:
    """The last instant that still belongs to a calendar day: what "as of a date" means."""
    return datetime.combine(day, time.max, ZoneInfo(timezone)).astimezone(UTC)
