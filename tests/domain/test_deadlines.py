"""Deadline wording: the day that is included, in the legal zone and in UTC."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from registry.domain.deadlines import deadline_words

WARSAW = ZoneInfo("Europe/Warsaw")


def test_midnight_reads_as_the_end_of_the_day_before_in_winter():
    words = deadline_words(datetime(2026, 12, 13, 0, 0, tzinfo=WARSAW), "Europe/Warsaw")
    assert words.text == "until the end of 12 December 2026 (23:59 CET; 22:59 UTC)"


def test_midnight_in_summer_time():
    words = deadline_words(datetime(2026, 7, 2, 0, 0, tzinfo=WARSAW), "Europe/Warsaw")
    assert words.text == "until the end of 1 July 2026 (23:59 CEST; 21:59 UTC)"


def test_the_day_summer_time_starts_and_ends():
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST; the next midnight is CEST.
    spring = deadline_words(datetime(2026, 3, 30, 0, 0, tzinfo=WARSAW), "Europe/Warsaw")
    assert spring.text == "until the end of 29 March 2026 (23:59 CEST; 21:59 UTC)"
    # 25 October 2026: 03:00 CEST goes back to 02:00 CET; that day ends in CET.
    autumn = deadline_words(datetime(2026, 10, 26, 0, 0, tzinfo=WARSAW), "Europe/Warsaw")
    assert autumn.text == "until the end of 25 October 2026 (23:59 CET; 22:59 UTC)"


def test_year_end():
    words = deadline_words(datetime(2027, 1, 1, 0, 0, tzinfo=WARSAW), "Europe/Warsaw")
    assert words.text == "until the end of 31 December 2026 (23:59 CET; 22:59 UTC)"
    assert words.day == "31 December 2026"


def test_utc_names_its_date_when_it_is_another_day():
    words = deadline_words(datetime(2026, 12, 13, 0, 0, tzinfo=ZoneInfo("America/New_York")),
                           "America/New_York")
    assert words.text == "until the end of 12 December 2026 (23:59 EST; 04:59 UTC on 13 December 2026)"


def test_a_deadline_given_in_utc_is_read_in_the_legal_zone():
    words = deadline_words(datetime(2026, 12, 12, 23, 0, tzinfo=UTC), "Europe/Warsaw")
    assert words.text == "until the end of 12 December 2026 (23:59 CET; 22:59 UTC)"


def test_an_instant_that_is_not_midnight_is_said_as_itself():
    words = deadline_words(datetime(2026, 12, 12, 15, 30, tzinfo=UTC), "Europe/Warsaw")
    assert words.text == "until 12 December 2026 at 16:30 CET (15:30 UTC)"


def test_naive_deadline_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_words(datetime(2026, 12, 13), "Europe/Warsaw")
