"""The registry's dates as an iCalendar (RFC 5545) file: effective dates and objection deadlines.

Pure: plain values in, bytes out. `icalendar` writes the file and its VTIMEZONE; this module decides
what the events are. An event's UID never changes for the same thing; its SEQUENCE rises each time
its date moves and once more when the change is withdrawn (STATUS:CANCELLED), so a subscribed calendar
replaces the old occurrence instead of adding a second one (RFC 5546 3.2.2 and 3.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

# How long the deadline's event lasts in a calendar view: the last hour before it closes.
DEADLINE_BLOCK = timedelta(hours=1)


@dataclass(frozen=True)
class Change:
    """What the calendar needs to know of one public change set."""

    id: int
    title: str
    url: str
    effective_at: datetime
    objection_deadline_at: datetime | None
    moves: int  # how many times its effective date moved after the notice
    is_withdrawn: bool
    updated_at: datetime  # the last time anything above changed


@dataclass(frozen=True)
class Event:
    uid: str
    summary: str
    description: str
    url: str
    start: datetime
    end: datetime | None
    sequence: int
    is_cancelled: bool
    stamp: datetime


def _words(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%B %Y, %H:%M %Z} ({moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


def events(changes: list[Change], *, host: str, zone: ZoneInfo) -> list[Event]:
    """Two events per change: its effective date, and the end of its objection window if it has one."""
    result = []
    for change in changes:
        sequence = change.moves + (1 if change.is_withdrawn else 0)
        withdrawn = " It was withdrawn and will not take effect." if change.is_withdrawn else ""
        result.append(Event(
            uid=f"change-{change.id}-effective@{host}",
            summary=f"Takes effect: {change.title}",
            description=f"This change takes effect on {_words(change.effective_at, zone)}.{withdrawn}",
            url=change.url, start=change.effective_at.astimezone(zone), end=None,
            sequence=sequence, is_cancelled=change.is_withdrawn, stamp=change.updated_at))
        if change.objection_deadline_at is not None:
            closes = change.objection_deadline_at
            last_minute = closes - timedelta(minutes=1)
            result.append(Event(
                uid=f"change-{change.id}-objections@{host}",
                summary=f"Objections close: {change.title}",
                description=(f"Objections to this change must arrive before {_words(closes, zone)}, "
                             f"that is by the end of {last_minute.astimezone(zone):%-d %B %Y} in "
                             f"{zone.key} time.{withdrawn}"),
                url=change.url, start=(closes - DEADLINE_BLOCK).astimezone(zone),
                end=closes.astimezone(zone), sequence=sequence, is_cancelled=change.is_withdrawn,
                stamp=change.updated_at))
    result.sort(key=lambda e: (e.start, e.uid))
    return result


def to_ics(items: list[Event], *, name: str, prodid: str) -> bytes:
    """The calendar file; times in the legal zone carry its TZID, and the VTIMEZONE is included."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", prodid)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    for item in items:
        event = icalendar.Event()
        event.add("uid", item.uid)
        event.add("dtstamp", item.stamp.astimezone(UTC))
        event.add("dtstart", item.start)
        if item.end is not None:
            event.add("dtend", item.end)
        event.add("summary", item.summary)
        event.add("description", item.description)
        event.add("url", item.url)
        event.add("sequence", item.sequence)
        event.add("status", "CANCELLED" if item.is_cancelled else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()
