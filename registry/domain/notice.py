"""Notice periods: when a material change may take effect and until when customers may object."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

Unit = Literal["business_days", "calendar_days"]
UNITS: tuple[str, ...] = get_args(Unit)

MAX_LENGTH = 365
MAX_OBJECTION_DAYS = 365

# These keys are valid tz database files but name whatever zone the host is configured with,
# so a rule using them would mean different things on different servers.
_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules"})

# A notice of at most 365 business days ends well within three years; scanning further means the
# configured calendars leave (almost) no business days, and looping on would never end.
_MAX_SCAN_DAYS = 3 * 366 + MAX_LENGTH


@dataclass(frozen=True)
class NoticeRule:
    length: int
    unit: Unit
    calendars: tuple[str, ...]
    timezone: str
    objection_days: int | None = None

    def validate(self) -> None:
        """Raise ValueError naming every problem at once, so that staff fix the rule in one go."""
        problems: list[str] = []
        problems += _int_problems("length", self.length, MAX_LENGTH)
        if self.unit not in UNITS:
            problems.append(f"unknown unit {self.unit!r}: expected one of {', '.join(UNITS)}")
        if not isinstance(self.calendars, tuple):
            # A list would make the frozen rule unhashable and could be mutated behind our back.
            problems.append(
                f"calendars must be a tuple of calendar codes, got {type(self.calendars).__name__}"
            )
        else:
            for code in self.calendars:
                try:
                    _parse_calendar(code)
                except ValueError as exc:
                    problems.append(str(exc))
        try:
            _zone(self.timezone)
        except ValueError as exc:
            problems.append(str(exc))
        if self.objection_days is not None:
            problems += _int_problems("objection_days", self.objection_days, MAX_OBJECTION_DAYS)
        if problems:
            raise ValueError("invalid notice rule: " + "; ".join(problems))

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


def completion_day(notice_completed_at: datetime, rule: NoticeRule) -> date:
    """The local calendar day on which the notice completed; it never counts towards the period.

    An instant exactly at 00:00:00 local already belongs to the new day, so a notice completed
    then does not get that whole day counted: counting starts the day after, as for any other time.
    """
    _require_aware(notice_completed_at)
    return notice_completed_at.astimezone(rule.zone).date()


def is_business_day(day: date, calendars: tuple[str, ...]) -> bool:
    """Monday to Friday and a holiday in none of the calendars."""
    if isinstance(day, datetime) or not isinstance(day, date):
        # A datetime has no single local day until a time zone is chosen; make the caller choose.
        raise TypeError(f"is_business_day expects a date, got {type(day).__name__}")
    if isinstance(calendars, str):
        # A bare "PL" would otherwise be iterated letter by letter.
        raise TypeError("calendars must be a tuple of calendar codes, e.g. ('PL',), not a string")
    if day.weekday() >= 5:
        return False
    return not any(day in _holidays(code, day.year) for code in calendars)


def counted_days(notice_completed_at: datetime, rule: NoticeRule) -> list[date]:
    """The local days that count towards the notice period, in order, to show the reasoning."""
    rule.validate()
    start = completion_day(notice_completed_at, rule)
    if rule.unit == "calendar_days":
        return [start + timedelta(days=i) for i in range(1, rule.length + 1)]
    days: list[date] = []
    day = start
    while len(days) < rule.length:
        day += timedelta(days=1)
        if (day - start).days > _MAX_SCAN_DAYS:
            raise ValueError(
                f"calendars {', '.join(rule.calendars)} leave fewer than {rule.length} business "
                f"days in the {_MAX_SCAN_DAYS} days after {start.isoformat()}"
            )
        if is_business_day(day, rule.calendars):
            days.append(day)
    return days


def earliest_effective(notice_completed_at: datetime, rule: NoticeRule) -> datetime:
    """Start of the local day after the last counted day (or after the completion day if none)."""
    days = counted_days(notice_completed_at, rule)
    last = days[-1] if days else completion_day(notice_completed_at, rule)
    return _start_of_day(last + timedelta(days=1), rule.zone)


def objection_deadline(notice_completed_at: datetime, rule: NoticeRule) -> datetime | None:
    """End of the objection_days-th calendar day after the completion day: the next midnight."""
    rule.validate()
    start = completion_day(notice_completed_at, rule)
    if rule.objection_days is None:
        return None
    return _start_of_day(start + timedelta(days=rule.objection_days + 1), rule.zone)


def objection_window_problem(rule: NoticeRule) -> str | None:
    """Why a policy's objection window is unlawful, or None.

    SCC 2021/914 clause 9(a): customers must be able to object before the sub-processor is engaged, so
    the window may not outlast the notice. The deadline is the end of the objection_days-th calendar day
    after the completion day, the earliest effective date the start of the day after the length-th
    counted day; a business day is also a calendar day, so objection_days <= length keeps the deadline
    at or before the earliest effective date in both units.
    """
    if rule.objection_days is None or rule.objection_days <= rule.length:
        return None
    unit = rule.unit.replace("_", " ")
    return (f"objection_days ({rule.objection_days}) must not exceed the notice length "
            f"({rule.length} {unit}): customers must be able to object before the change takes effect")


def bounded_objection_deadline(deadline: datetime | None, effective_at: datetime | None) -> datetime | None:
    """The objection deadline never falls after the effective date (an objection must come before)."""
    if deadline is None or effective_at is None:
        return deadline
    return min(deadline, effective_at)


def _start_of_day(day: date, zone: ZoneInfo) -> datetime:
    # Where a DST jump skips midnight (e.g. America/Santiago) 00:00 does not exist; the round trip
    # through UTC turns it into the first real instant of the day instead of a phantom time.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC).astimezone(zone)


def _require_aware(value: datetime) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"notice_completed_at must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time could be read in the server's zone or UTC; either may shift the counted days.
        raise ValueError(
            f"notice_completed_at must be timezone-aware, got naive {value.isoformat()}"
        )


def _int_problems(name: str, value: object, maximum: int) -> list[str]:
    # bool is an int subclass; True as a length is always a bug, not "1 day".
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{name} must be a whole number of days, got {value!r}"]
    if not 0 <= value <= maximum:
        return [f"{name} must be between 0 and {maximum} days, got {value}"]
    return []


@functools.lru_cache(maxsize=64)
def _zone(key: str) -> ZoneInfo:
    if not isinstance(key, str) or key in _HOST_DEPENDENT_ZONES:
        raise ValueError(f"unknown time zone {key!r}: expected an IANA name like 'Europe/Warsaw'")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {key!r}: expected an IANA name like 'Europe/Warsaw'"
        ) from exc


@functools.lru_cache(maxsize=256)
def _parse_calendar(code: str) -> tuple[str, str | None]:
    """Split "CC" or "CC-SUBDIV" after checking both parts against the holidays library."""
    if not isinstance(code, str):
        raise ValueError(f"calendar codes must be strings, got {code!r}")
    country, _, subdiv = code.partition("-")
    # Aliases (e.g. "UK", "USA") are left out so that each calendar has one stored spelling.
    supported = holidays.list_supported_countries(include_aliases=False)
    if country not in supported:
        raise ValueError(
            f"unknown holiday calendar {code!r}: {country!r} is not a country code supported "
            "by the holidays library (expected e.g. 'PL' or 'US-MA')"
        )
    if not subdiv:
        if code.endswith("-"):
            raise ValueError(f"unknown holiday calendar {code!r}: empty subdivision after '-'")
        return country, None
    if subdiv not in supported[country]:
        known = ", ".join(supported[country]) or "none"
        raise ValueError(
            f"unknown holiday calendar {code!r}: {country} has no subdivision {subdiv!r} "
            f"(supported: {known})"
        )
    return country, subdiv


@functools.lru_cache(maxsize=512)
def _holidays(code: str, year: int) -> holidays.HolidayBase:
    # Building a calendar costs tens of milliseconds, and a notice scans the same year many times.
    # expand=False keeps the shared cached object read-only: lookups never add years to it.
    country, subdiv = _parse_calendar(code)
    return holidays.country_holidays(country, subdiv=subdiv, years=year, expand=False)
