"""The calendar file: RFC 5545 as icalendar reads it, stable UIDs, SEQUENCE and CANCELLED, the VTIMEZONE."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain.calendar import Change, events, to_ics

ZONE = ZoneInfo("Europe/Berlin")
AT = datetime(2026, 12, 12, 23, 0, tzinfo=UTC)  # 13 December 00:00 in Berlin


def change(**overrides) -> Change:
    values = dict(id=7, title="New analytics provider", url="https://trust.example/changes",
                  effective_at=AT, objection_deadline_at=AT - timedelta(days=10), moves=0,
                  is_withdrawn=False, updated_at=AT - timedelta(days=30))
    return Change(**(values | overrides))


def parse(changes: list[Change]) -> icalendar.Calendar:
    body = to_ics(events(changes, host="trust.example", zone=ZONE), name="Ferncastle: changes",
                  prodid="-//Ferncastle//Registry//EN")
    assert body.startswith(b"BEGIN:VCALENDAR\r\n") and body.endswith(b"END:VCALENDAR\r\n")
    assert all(len(line) <= 75 for line in body.split(b"\r\n")), "RFC 5545 3.1: lines fold at 75 octets"
    return icalendar.Calendar.from_ical(body)


def test_an_effective_date_and_an_objection_deadline_in_the_legal_zone():
    calendar = parse([change()])
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"] == "-//Ferncastle//Registry//EN"
    [zone] = calendar.walk("VTIMEZONE")
    assert zone["TZID"] == "Europe/Berlin"
    assert {c.name for c in zone.subcomponents} >= {"STANDARD"}
    deadline, effective = calendar.walk("VEVENT")
    assert str(effective["UID"]) == "change-7-effective@trust.example"
    assert effective["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert effective.decoded("DTSTART") == AT and effective.decoded("DTSTART").hour == 0
    assert "DTEND" not in effective
    assert str(effective["STATUS"]) == "CONFIRMED" and int(effective["SEQUENCE"]) == 0
    assert str(deadline["UID"]) == "change-7-objections@trust.example"
    assert deadline.decoded("DTEND") == AT - timedelta(days=10)
    assert "by the end of 2 December 2026" in str(deadline["DESCRIPTION"])
    assert str(effective["URL"]) == "https://trust.example/changes"


def test_a_moved_date_raises_the_sequence_and_keeps_the_uid():
    before = parse([change()]).walk("VEVENT")[1]
    after = parse([change(effective_at=AT + timedelta(days=7), moves=1)]).walk("VEVENT")[1]
    assert after["UID"] == before["UID"]
    assert int(after["SEQUENCE"]) == int(before["SEQUENCE"]) + 1
    assert after.decoded("DTSTART") - before.decoded("DTSTART") == timedelta(days=7)


def test_a_withdrawal_cancels_both_events_with_a_higher_sequence():
    cancelled = parse([change(moves=2, is_withdrawn=True)]).walk("VEVENT")
    assert [str(e["STATUS"]) for e in cancelled] == ["CANCELLED", "CANCELLED"]
    assert [int(e["SEQUENCE"]) for e in cancelled] == [3, 3]
    assert all("withdrawn" in str(e["DESCRIPTION"]) for e in cancelled)


def test_no_deadline_no_deadline_event_and_summer_time_has_its_own_offset():
    summer = datetime(2027, 6, 30, 22, 0, tzinfo=UTC)
    [event] = parse([change(effective_at=summer, objection_deadline_at=None)]).walk("VEVENT")
    assert event.decoded("DTSTART").utcoffset() == timedelta(hours=2)
    assert event.decoded("DTSTART") == summer


@settings(deadline=None)  # a shared machine under load; speed is for bench/
@given(st.text(min_size=1, max_size=300))
def test_any_title_round_trips(title):
    [deadline, effective] = parse([change(title=title)]).walk("VEVENT")
    # icalendar escapes commas, semicolons, backslashes and newlines; CR alone it cannot keep.
    assert str(effective["SUMMARY"]) == "Takes effect: " + title.replace("\r\n", "\n").replace("\r", "\n")
    assert str(deadline["SUMMARY"]).startswith("Objections close: ")
