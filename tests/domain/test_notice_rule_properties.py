"""What tests/domain/test_notice.py leaves out: the rules actually configured, instants rather than days,
and every holiday of every configured calendar rather than a sample.

test_notice.py already checks the issue's three worked examples and, over sampled rules, that the
effective date is the earliest local midnight after `length` counted days. Here the same promise is
checked (1) for the notice policies this product ships with, (2) as instants: no moment before the
effective date has the full period behind it, and (3) exhaustively around each holiday of PL and US-MA.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.demo import content
from registry.domain.notice import NoticeRule, earliest_effective
from registry.services.demo import SUBPROCESSOR_POLICY
from tests.domain.test_notice import (
    DST_CHANGE_DAYS,
    FIRST_YEAR,
    LAST_YEAR,
    PROPERTY,
    assert_local_midnight,
    oracle_count_between,
    oracle_counts,
    oracle_effective_day,
    oracle_holidays,
)


def as_rule(policy: dict) -> NoticeRule:
    return NoticeRule(length=policy["length"], unit=policy["unit"], calendars=tuple(policy["calendars"]),
                      timezone=policy["timezone"], objection_days=policy["objection_days"])


# The shipped policies, and the issue's default (three business days, PL and US-MA) in both zones it names.
CONFIGURED = {
    **{spec["slug"]: as_rule(spec["notice"]) for spec in content.DOCUMENTS},
    "subprocessors": as_rule(SUBPROCESSOR_POLICY),
    "issue-warsaw": NoticeRule(3, "business_days", ("PL", "US-MA"), "Europe/Warsaw"),
    "issue-new-york": NoticeRule(3, "business_days", ("US-MA",), "America/New_York"),
}
CONFIGURED_CALENDARS = sorted({c for r in CONFIGURED.values() for c in r.calendars})


def test_the_configured_rules_are_valid_and_cover_both_units():
    for r in CONFIGURED.values():
        r.validate()
    assert {r.unit for r in CONFIGURED.values()} == {"business_days", "calendar_days"}
    assert set(CONFIGURED_CALENDARS) >= {"PL", "US-MA"}


@st.composite
def configured_scenarios(draw: st.DrawFn) -> tuple[NoticeRule, datetime]:
    """A configured rule and a completion instant near a weekend, holiday, DST change or year end."""
    r = CONFIGURED[draw(st.sampled_from(sorted(CONFIGURED)))]
    zone = ZoneInfo(r.timezone)
    kind = draw(st.sampled_from(["anywhere", "holiday", "dst", "year_end", "weekend"]))
    if kind == "holiday":
        anchor = draw(st.sampled_from(sorted(
            h for c in r.calendars for h in oracle_holidays(c) if FIRST_YEAR <= h.year <= LAST_YEAR)))
    elif kind == "dst":
        anchor = draw(st.sampled_from([d for key, d in DST_CHANGE_DAYS if key == r.timezone]))
    elif kind == "year_end":
        anchor = date(draw(st.integers(FIRST_YEAR, LAST_YEAR - 1)), 12, 31)
    else:
        anchor = draw(st.dates(date(FIRST_YEAR, 1, 1), date(LAST_YEAR, 12, 31)))
        if kind == "weekend":
            anchor += timedelta(days=(4 - anchor.weekday()) % 7)  # the Friday on or after it
    day = anchor + timedelta(days=draw(st.integers(-6, 2)))
    local = datetime.combine(day, draw(st.times()), zone).replace(fold=draw(st.integers(0, 1)))
    return r, local.astimezone(UTC)


@PROPERTY
@given(configured_scenarios())
def test_configured_rules_give_the_earliest_midnight_the_rule_allows(scenario):
    r, completed = scenario
    effective = earliest_effective(completed, r)
    start = completed.astimezone(ZoneInfo(r.timezone)).date()

    assert_local_midnight(effective, r)
    assert effective.date() == oracle_effective_day(completed, r)
    assert oracle_count_between(start, effective.date(), r) == r.length
    # The day before was itself counted: any earlier midnight would leave the period one day short.
    assert oracle_counts(effective.date() - timedelta(days=1), r)
    assert oracle_count_between(start, effective.date() - timedelta(days=1), r) == r.length - 1


@PROPERTY
@given(configured_scenarios(), st.data())
def test_no_instant_before_the_effective_date_has_the_full_period_behind_it(scenario, data):
    r, completed = scenario
    effective = earliest_effective(completed, r)
    zone = ZoneInfo(r.timezone)
    # Any instant between the completion and the effective date (real elapsed time, not wall time),
    # including the very last microsecond before it.
    span = (effective - completed) // timedelta(microseconds=1)
    offset = data.draw(st.integers(0, span - 1) | st.just(span - 1))
    moment = completed + timedelta(microseconds=offset)
    assert completed <= moment < effective

    start = completed.astimezone(zone).date()
    # The days that have fully passed by `moment` are those before its local day.
    passed = oracle_count_between(start, moment.astimezone(zone).date(), r)
    assert passed < r.length
    # ...and the effective instant itself is the first one at which the whole period has passed.
    assert oracle_count_between(start, effective.astimezone(zone).date(), r) == r.length


@pytest.mark.parametrize("code", ["PL", "US-MA"])
def test_every_weekday_holiday_of_the_issue_calendars_is_skipped(code):
    zone = "Europe/Warsaw" if code == "PL" else "America/New_York"
    r = NoticeRule(3, "business_days", (code,), zone)
    holidays_checked = 0
    for holiday in sorted(oracle_holidays(code)):
        if not FIRST_YEAR <= holiday.year <= LAST_YEAR or holiday.weekday() >= 5:
            continue
        # The notice completes at 17:00 on the business day before the holiday.
        day_before = holiday - timedelta(days=1)
        while not oracle_counts(day_before, r):
            day_before -= timedelta(days=1)
        completed = datetime.combine(day_before, time(17), ZoneInfo(zone))
        effective = earliest_effective(completed, r)
        counted = []
        day = day_before
        while len(counted) < 3:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in oracle_holidays(code):
                counted.append(day)
        assert holiday not in counted
        expected = datetime.combine(counted[-1] + timedelta(days=1), time(0), ZoneInfo(zone))
        assert effective == expected, holiday
        holidays_checked += 1
    assert holidays_checked >= 5 * (LAST_YEAR - FIRST_YEAR + 1)


@pytest.mark.parametrize("year", range(FIRST_YEAR, LAST_YEAR))
def test_year_end_in_warsaw_with_polish_and_massachusetts_holidays(year):
    # 24-26 December and 1 January are Polish holidays from 2025 on; the period runs into the new year.
    r = CONFIGURED["issue-warsaw"]
    completed = datetime(year, 12, 23, 16, 0, tzinfo=ZoneInfo("Europe/Warsaw"))
    effective = earliest_effective(completed, r)
    expected = completed.date()
    counted = 0
    while counted < 3:
        expected += timedelta(days=1)
        counted += oracle_counts(expected, r)
    assert effective == datetime.combine(expected + timedelta(days=1), time(0), ZoneInfo("Europe/Warsaw"))
    assert effective.year == year + 1 or effective.month == 12
    assert date(year, 12, 25) < effective.date()
