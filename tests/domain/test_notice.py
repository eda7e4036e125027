"""Notice periods: worked examples, validation, and properties against a day-by-day oracle."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain import notice
from registry.domain.notice import (
    NoticeRule,
    completion_day,
    counted_days,
    earliest_effective,
    is_business_day,
    objection_deadline,
)

WARSAW = ZoneInfo("Europe/Warsaw")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")

SAMPLE_CALENDARS = ("PL", "US-MA", "DE-BY", "GB-ENG", "FR", "IE", "US-NY")
SAMPLE_ZONES = ("Europe/Warsaw", "America/New_York", "Australia/Sydney")
FIRST_YEAR, LAST_YEAR = 2025, 2030

# No example database: the suite must not write a .hypothesis directory into the project.
PROPERTY = settings(max_examples=300, deadline=None, database=None)


def rule(**changes: object) -> NoticeRule:
    base = NoticeRule(length=3, unit="business_days", calendars=("PL",), timezone="Europe/Warsaw")
    return dataclasses.replace(base, **changes)


def d(text: str) -> date:
    return date.fromisoformat(text)


# --- worked examples from the privacy policy -------------------------------------------------


def test_friday_before_christmas_in_warsaw_with_polish_and_massachusetts_holidays():
    completed = datetime(2026, 12, 18, 16, 0, tzinfo=WARSAW)
    r = rule(calendars=("PL", "US-MA"))

    assert counted_days(completed, r) == [d("2026-12-21"), d("2026-12-22"), d("2026-12-23")]
    effective = earliest_effective(completed, r)
    assert effective == datetime(2026, 12, 24, 0, 0, tzinfo=WARSAW)
    assert effective.tzinfo == WARSAW


def test_thanksgiving_does_not_count_in_new_york():
    completed = datetime(2026, 11, 25, 17, 30, tzinfo=NEW_YORK)
    r = rule(calendars=("US-MA",), timezone="America/New_York")

    assert not is_business_day(d("2026-11-26"), ("US-MA",))  # Thanksgiving
    assert counted_days(completed, r) == [d("2026-11-27"), d("2026-11-30"), d("2026-12-01")]
    effective = earliest_effective(completed, r)
    assert effective == datetime(2026, 12, 2, 0, 0, tzinfo=NEW_YORK)
    assert effective.utcoffset() == timedelta(hours=-5)


def test_easter_monday_and_summer_time_in_warsaw():
    completed = datetime(2027, 3, 26, 10, 0, tzinfo=WARSAW)
    r = rule(calendars=("PL",))

    assert completed.utcoffset() == timedelta(hours=1)
    assert not is_business_day(d("2027-03-29"), ("PL",))  # Easter Monday
    assert counted_days(completed, r) == [d("2027-03-30"), d("2027-03-31"), d("2027-04-01")]
    effective = earliest_effective(completed, r)
    assert effective.isoformat() == "2027-04-02T00:00:00+02:00"


# --- the counting rule -----------------------------------------------------------------------


def test_calendar_days_count_weekends_and_holidays():
    completed = datetime(2026, 12, 23, 9, 0, tzinfo=WARSAW)  # Wed; 24-26 Dec are Polish holidays
    r = rule(length=5, unit="calendar_days")

    assert counted_days(completed, r) == [d(f"2026-12-{day}") for day in (24, 25, 26, 27, 28)]
    assert earliest_effective(completed, r) == datetime(2026, 12, 29, tzinfo=WARSAW)


def test_calendar_days_across_month_and_dst_end():
    completed = datetime(2026, 10, 1, 23, 59, tzinfo=WARSAW)
    effective = earliest_effective(completed, rule(length=30, unit="calendar_days"))

    assert effective.isoformat() == "2026-11-01T00:00:00+01:00"


@pytest.mark.parametrize("unit", ["business_days", "calendar_days"])
def test_zero_length_takes_effect_at_the_next_local_midnight(unit):
    completed = datetime(2026, 12, 24, 23, 59, 59, tzinfo=WARSAW)  # a holiday: still irrelevant
    r = rule(length=0, unit=unit)

    assert counted_days(completed, r) == []
    assert earliest_effective(completed, r) == datetime(2026, 12, 25, tzinfo=WARSAW)


def test_completion_exactly_at_local_midnight_does_not_count_that_day():
    at_midnight = datetime(2026, 12, 21, 0, 0, 0, tzinfo=WARSAW)  # Monday
    r = rule(length=1)

    assert completion_day(at_midnight, r) == d("2026-12-21")
    assert counted_days(at_midnight, r) == [d("2026-12-22")]
    assert earliest_effective(at_midnight, r) == datetime(2026, 12, 23, tzinfo=WARSAW)


def test_one_microsecond_before_midnight_belongs_to_the_previous_day():
    just_before = datetime(2026, 12, 20, 23, 59, 59, 999999, tzinfo=WARSAW)  # Sunday
    r = rule(length=1)

    assert completion_day(just_before, r) == d("2026-12-20")
    assert earliest_effective(just_before, r) == datetime(2026, 12, 22, tzinfo=WARSAW)


def test_days_are_counted_in_the_legal_time_zone_not_the_given_one():
    # Monday 23:30 UTC is already Tuesday 00:30 in Warsaw, so Tuesday is the completion day.
    completed = datetime(2026, 12, 21, 23, 30, tzinfo=UTC)
    r = rule(calendars=("PL",))

    assert completion_day(completed, r) == d("2026-12-22")
    # 24 (Christmas Eve, a Polish holiday since 2025), 25, 26 and the weekend do not count.
    assert counted_days(completed, r) == [d("2026-12-23"), d("2026-12-28"), d("2026-12-29")]
    assert earliest_effective(completed, r) == datetime(2026, 12, 30, tzinfo=WARSAW)


def test_a_holiday_in_any_one_calendar_is_not_a_business_day():
    epiphany = d("2026-01-06")  # Tuesday: a holiday in Poland, not in Massachusetts

    assert is_business_day(epiphany, ("US-MA",))
    assert not is_business_day(epiphany, ("PL",))
    assert not is_business_day(epiphany, ("US-MA", "PL"))
    assert not is_business_day(d("2026-01-10"), ())  # Saturday, whatever the calendars
    assert is_business_day(d("2026-01-07"), ())


def test_subdivision_holidays_apply_only_to_that_subdivision():
    patriots_day = d("2026-04-20")  # Massachusetts only

    assert not is_business_day(patriots_day, ("US-MA",))
    assert is_business_day(patriots_day, ("US-NY",))


def test_holiday_calendars_are_cached_per_calendar_and_year():
    notice._holidays.cache_clear()
    for _ in range(3):
        # Ordinary Thursday and Friday: both calendars are consulted on each call.
        assert is_business_day(d("2028-05-04"), ("PL", "DE-BY"))
        assert is_business_day(d("2028-05-05"), ("PL", "DE-BY"))

    info = notice._holidays.cache_info()
    assert info.misses == 2
    assert info.hits == 10


def test_is_business_day_rejects_a_datetime_and_a_bare_string():
    with pytest.raises(TypeError, match="expects a date"):
        is_business_day(datetime(2026, 1, 7, tzinfo=WARSAW), ("PL",))
    with pytest.raises(TypeError, match="tuple of calendar codes"):
        is_business_day(d("2026-01-07"), "PL")
    with pytest.raises(ValueError, match="unknown holiday calendar 'XX'"):
        is_business_day(d("2026-01-07"), ("XX",))


# --- objection deadline ----------------------------------------------------------------------


def test_objection_deadline_is_the_end_of_the_nth_calendar_day():
    completed = datetime(2026, 12, 18, 16, 0, tzinfo=WARSAW)

    # Day 1 is 19 December, day 14 is 1 January; the deadline is the midnight ending it.
    deadline = objection_deadline(completed, rule(objection_days=14))
    assert deadline == datetime(2027, 1, 2, tzinfo=WARSAW)


def test_objection_deadline_across_dst_start_is_local_midnight():
    completed = datetime(2027, 3, 20, 12, 0, tzinfo=WARSAW)

    deadline = objection_deadline(completed, rule(objection_days=14))
    assert deadline.isoformat() == "2027-04-04T00:00:00+02:00"


def test_zero_objection_days_ends_with_the_completion_day():
    completed = datetime(2026, 12, 18, 0, 0, tzinfo=WARSAW)

    assert objection_deadline(completed, rule(objection_days=0)) == datetime(
        2026, 12, 19, tzinfo=WARSAW
    )


def test_no_objection_right_gives_no_deadline():
    assert objection_deadline(datetime(2026, 12, 18, 16, 0, tzinfo=WARSAW), rule()) is None


# --- rejected input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function", [earliest_effective, objection_deadline, counted_days, completion_day]
)
def test_naive_datetime_is_rejected(function):
    with pytest.raises(ValueError, match="must be timezone-aware, got naive 2026-12-18T16:00:00"):
        function(datetime(2026, 12, 18, 16, 0), rule(objection_days=14))


def test_a_date_is_not_accepted_as_the_completion_instant():
    with pytest.raises(TypeError, match="must be a datetime, got date"):
        earliest_effective(d("2026-12-18"), rule())


def test_a_valid_rule_passes_validation():
    assert rule(calendars=SAMPLE_CALENDARS, objection_days=30).validate() is None
    assert rule(length=365, calendars=(), timezone="UTC", objection_days=365).validate() is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"length": -1}, "length must be between 0 and 365 days, got -1"),
        ({"length": 366}, "length must be between 0 and 365 days, got 366"),
        ({"length": 3.0}, "length must be a whole number of days, got 3.0"),
        ({"length": True}, "length must be a whole number of days, got True"),
        ({"unit": "weeks"}, "unknown unit 'weeks': expected one of business_days, calendar_days"),
        ({"calendars": ("XX",)}, "unknown holiday calendar 'XX': 'XX' is not a country code"),
        ({"calendars": ("UK",)}, "unknown holiday calendar 'UK'"),  # alias of GB
        ({"calendars": ("pl",)}, "unknown holiday calendar 'pl'"),
        ({"calendars": ("US-XX",)}, "unknown holiday calendar 'US-XX': US has no subdivision 'XX'"),
        ({"calendars": ("PL", "DE-")}, "unknown holiday calendar 'DE-': empty subdivision"),
        ({"calendars": ["PL"]}, "calendars must be a tuple of calendar codes, got list"),
        ({"calendars": (7,)}, "calendar codes must be strings, got 7"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"timezone": "europe/warsaw"}, "unknown time zone 'europe/warsaw'"),
        ({"timezone": ""}, "unknown time zone ''"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone '../../etc/passwd'"),
        ({"timezone": "localtime"}, "unknown time zone 'localtime'"),
        ({"objection_days": -1}, "objection_days must be between 0 and 365 days, got -1"),
        ({"objection_days": "14"}, "objection_days must be a whole number of days, got '14'"),
    ],
)
def test_invalid_rule_is_rejected_with_a_clear_message(changes, message):
    bad = rule(**changes)

    with pytest.raises(ValueError, match=r"^invalid notice rule: ") as excinfo:
        bad.validate()
    assert message in str(excinfo.value)
    # The computations refuse the rule too, rather than compute with it.
    with pytest.raises(ValueError, match=r"^invalid notice rule: "):
        earliest_effective(datetime(2026, 12, 18, 16, 0, tzinfo=WARSAW), bad)


def test_every_problem_of_a_rule_is_reported_at_once():
    bad = NoticeRule(length=400, unit="weeks", calendars=("ZZ",), timezone="Nowhere/City")

    with pytest.raises(ValueError) as excinfo:
        bad.validate()
    for part in ("length must be between", "unknown unit", "'ZZ'", "'Nowhere/City'"):
        assert part in str(excinfo.value)


# --- properties against an independent day-by-day oracle -------------------------------------


@functools.cache
def oracle_holidays(code: str) -> frozenset[date]:
    country, _, subdiv = code.partition("-")
    # The notice can run up to 365 business days past the last generated year.
    years = range(FIRST_YEAR - 1, LAST_YEAR + 3)
    return frozenset(holidays.country_holidays(country, subdiv=subdiv or None, years=years))


def oracle_counts(day: date, r: NoticeRule) -> bool:
    if r.unit == "calendar_days":
        return True
    return day.weekday() < 5 and all(day not in oracle_holidays(c) for c in r.calendars)


def oracle_count_between(first_excluded: date, last_excluded: date, r: NoticeRule) -> int:
    count, day = 0, first_excluded + timedelta(days=1)
    while day < last_excluded:
        count += oracle_counts(day, r)
        day += timedelta(days=1)
    return count


def oracle_effective_day(completed: datetime, r: NoticeRule) -> date:
    day, counted = completed.astimezone(ZoneInfo(r.timezone)).date(), 0
    while counted < r.length:
        day += timedelta(days=1)
        if oracle_counts(day, r):
            counted += 1
    return day + timedelta(days=1)


def _dst_change_days() -> list[tuple[str, date]]:
    changes = []
    for key in SAMPLE_ZONES:
        zone, day = ZoneInfo(key), date(FIRST_YEAR, 1, 1)
        while day.year <= LAST_YEAR:
            before = datetime.combine(day, time(0), zone).utcoffset()
            after = datetime.combine(day + timedelta(days=1), time(0), zone).utcoffset()
            if before != after:
                changes.append((key, day))
            day += timedelta(days=1)
    return changes


DST_CHANGE_DAYS = _dst_change_days()


@st.composite
def rules(draw: st.DrawFn) -> NoticeRule:
    return NoticeRule(
        length=draw(st.integers(0, 25) | st.integers(0, 365)),
        unit=draw(st.sampled_from(["business_days", "business_days", "calendar_days"])),
        calendars=tuple(draw(st.lists(st.sampled_from(SAMPLE_CALENDARS), max_size=3, unique=True))),
        timezone=draw(st.sampled_from(SAMPLE_ZONES)),
        objection_days=draw(st.none() | st.integers(0, 365)),
    )


@st.composite
def completions(draw: st.DrawFn, r: NoticeRule) -> datetime:
    """An instant from 2025-2030, biased towards weekends, holidays, DST changes and year ends."""
    zone = ZoneInfo(r.timezone)
    kind = draw(st.sampled_from(["anywhere", "holiday", "dst", "year_end"]))
    if kind == "holiday" and r.calendars:
        candidates = sorted(
            h for c in r.calendars for h in oracle_holidays(c) if FIRST_YEAR <= h.year <= LAST_YEAR
        )
        anchor = draw(st.sampled_from(candidates))
    elif kind == "dst":
        anchor = draw(st.sampled_from([day for key, day in DST_CHANGE_DAYS if key == r.timezone]))
    elif kind == "year_end":
        anchor = date(draw(st.integers(FIRST_YEAR, LAST_YEAR - 1)), 12, 31)
    else:
        anchor = draw(st.dates(date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)))
    day = anchor + timedelta(days=draw(st.integers(-6, 2)))
    local = datetime.combine(day, draw(st.times()), zone).replace(fold=draw(st.integers(0, 1)))
    # Normalising through UTC turns a wall time skipped by DST into a real instant.
    instant = local.astimezone(UTC)
    shown_in = draw(st.sampled_from([zone, UTC, WARSAW, NEW_YORK, SYDNEY]))
    return instant.astimezone(shown_in)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[NoticeRule, datetime]:
    r = draw(rules())
    return r, draw(completions(r))


def assert_local_midnight(value: datetime, r: NoticeRule) -> None:
    assert value.tzinfo == ZoneInfo(r.timezone)
    assert value.time() == time(0)
    # Same instant when recomputed from UTC: a real wall time, not one DST skipped.
    assert value.astimezone(UTC).astimezone(ZoneInfo(r.timezone)) == value
    assert value.utcoffset() == ZoneInfo(r.timezone).utcoffset(value)


@PROPERTY
@given(scenarios())
def test_effective_date_is_the_earliest_midnight_after_length_counted_days(scenario):
    r, completed = scenario
    effective = earliest_effective(completed, r)
    start = completed.astimezone(ZoneInfo(r.timezone)).date()
    result_day = effective.date()

    # (a) midnight local, in the legal time zone
    assert_local_midnight(effective, r)
    # (b) exactly `length` counted days strictly between the completion day and the result day
    assert oracle_count_between(start, result_day, r) == r.length
    # (c) earliest: the day before the result is itself counted, so a day earlier is too few
    if r.length > 0:
        day_before = result_day - timedelta(days=1)
        assert day_before > start
        assert oracle_counts(day_before, r)
        assert oracle_count_between(start, day_before, r) == r.length - 1
    else:
        assert result_day == start + timedelta(days=1)
    # (d) strictly after the completion
    assert effective > completed
    # the oracle agrees, and the shown reasoning is the oracle's list of counted days
    assert result_day == oracle_effective_day(completed, r)
    shown = counted_days(completed, r)
    assert len(shown) == r.length
    assert all(start < day < result_day and oracle_counts(day, r) for day in shown)


@PROPERTY
@given(
    scenarios(),
    st.timedeltas(timedelta(0), timedelta(hours=2))
    | st.timedeltas(timedelta(0), timedelta(days=40)),
)
def test_a_later_completion_never_gives_an_earlier_effective_date(scenario, delay):
    r, first = scenario
    second = first.astimezone(UTC) + delay  # real elapsed time, not wall-clock arithmetic

    # (e) monotonic
    assert second >= first
    assert earliest_effective(second, r) >= earliest_effective(first, r)
    assert oracle_effective_day(second, r) >= oracle_effective_day(first, r)


@PROPERTY
@given(scenarios())
def test_objection_deadline_ends_the_nth_calendar_day_after_completion(scenario):
    r, completed = scenario
    deadline = objection_deadline(completed, r)

    if r.objection_days is None:
        assert deadline is None
        return
    start = completed.astimezone(ZoneInfo(r.timezone)).date()
    assert_local_midnight(deadline, r)
    assert deadline.date() == start + timedelta(days=r.objection_days + 1)
    assert deadline > completed


@PROPERTY
@given(
    st.dates(date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)),
    st.lists(st.sampled_from(SAMPLE_CALENDARS), max_size=3, unique=True).map(tuple),
)
def test_is_business_day_matches_weekday_and_every_calendar(day, calendars):
    expected = day.weekday() < 5 and not any(day in oracle_holidays(c) for c in calendars)

    assert is_business_day(day, calendars) is expected


@pytest.mark.parametrize("code", SAMPLE_CALENDARS)
def test_sample_calendars_have_weekday_holidays_every_year(code):
    # Guards the property tests against silently exercising calendars without holidays.
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        weekday_holidays = [h for h in oracle_holidays(code) if h.year == year and h.weekday() < 5]
        assert len(weekday_holidays) >= 5, (code, year)
        assert not any(is_business_day(h, (code,)) for h in weekday_holidays)
