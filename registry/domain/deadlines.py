"""Deadlines in words: an exclusive instant said as the last day it includes, in the legal zone and UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# The last minute a reader can act in: a deadline at 00:00 reads "until the end of" the day before.
_LAST_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class DeadlineWords:
    """`text` is the whole phrase; the parts let a page put the day in bold or a <time> element."""

    day: str
    local: str
    utc: str
    text: str


def _day(value: datetime) -> str:
    return f"{value.day} {value:%B %Y}"


def deadline_words(deadline: datetime, timezone: str) -> DeadlineWords:
    """"until the end of 12 December 2026 (23:59 CET; 22:59 UTC)" for 13 December 00:00 CET.

    The stored deadline is exclusive (the first instant when objecting is no longer possible). When it
    falls on a local midnight, readers are told the day it ends, which is included; any other instant is
    said as the time itself. UTC names its own date when it is not the local one.
    """
    if deadline.tzinfo is None or deadline.utcoffset() is None:
        raise ValueError(f"deadline must be timezone-aware, got naive {deadline.isoformat()}")
    zone = ZoneInfo(timezone)
    local = deadline.astimezone(zone)
    at_midnight = (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    shown = (deadline - _LAST_MINUTE) if at_midnight else deadline
    shown_local, shown_utc = shown.astimezone(zone), shown.astimezone(UTC)
    local_time = f"{shown_local:%H:%M %Z}"
    utc_time = f"{shown_utc:%H:%M} UTC"
    if shown_utc.date() != shown_local.date():
        utc_time += f" on {_day(shown_utc)}"
    if at_midnight:
        text = f"until the end of {_day(shown_local)} ({local_time}; {utc_time})"
    else:
        text = f"until {_day(shown_local)} at {local_time} ({utc_time})"
    return DeadlineWords(day=_day(shown_local), local=local_time, utc=utc_time, text=text)
