"""Objection rules: moves, outcomes, references, the window and when one is unanswered."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from registry.domain import objections as rules

WARSAW = ZoneInfo("Europe/Warsaw")


def test_moves_go_forward_only():
    rules.check_transition("received", "acknowledged")
    rules.check_transition("acknowledged", "in_discussion")
    rules.check_transition("in_discussion", "resolved", "alternative_offered")
    with pytest.raises(rules.TransitionError, match="cannot become received"):
        rules.check_transition("in_discussion", "received")
    with pytest.raises(rules.TransitionError, match="cannot become"):
        rules.check_transition("resolved", "in_discussion")
    with pytest.raises(rules.TransitionError, match="cannot become"):
        rules.check_transition("draft", "acknowledged")


def test_resolving_needs_a_known_outcome_and_only_resolving_has_one():
    with pytest.raises(rules.TransitionError, match="outcome"):
        rules.check_transition("received", "resolved")
    with pytest.raises(rules.TransitionError, match="outcome"):
        rules.check_transition("received", "resolved", "made_up")
    with pytest.raises(rules.TransitionError, match="Only a resolved"):
        rules.check_transition("received", "acknowledged", "change_withdrawn")
    with pytest.raises(rules.TransitionError, match="Unknown state"):
        rules.check_transition("received", "lost")


def test_references():
    assert rules.reference(2026, 42) == "OBJ-2026-0042"
    assert rules.reference(2026, 12345) == "OBJ-2026-12345"
    assert rules.parse_reference("OBJ-2026-0042") == (2026, 42)
    assert rules.parse_reference("OBJ-26-1") is None
    with pytest.raises(ValueError):
        rules.reference(2026, 0)


def test_window_is_open_before_the_exclusive_deadline_only():
    deadline = datetime(2026, 12, 13, tzinfo=WARSAW)
    before = deadline - timedelta(microseconds=1)
    assert rules.is_open(deadline, before, announced=True, withdrawn=False)
    assert not rules.is_open(deadline, deadline, announced=True, withdrawn=False)
    assert not rules.is_open(deadline, before, announced=False, withdrawn=False)
    assert not rules.is_open(deadline, before, announced=True, withdrawn=True)
    assert not rules.is_open(None, before, announced=True, withdrawn=False)


def test_unanswered_counts_business_days_after_the_arrival_day():
    # Friday 4 December 2026: Monday 7 and Tuesday 8 count; unanswered from Wednesday 00:00.
    friday = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert rules.unanswered_since(friday, "Europe/Warsaw", ("PL",)) == datetime(2026, 12, 9, tzinfo=WARSAW)


def test_unanswered_skips_holidays_of_the_calendar():
    # Wednesday 23 December 2026: 24 December is a holiday in Poland (from 2025), 25 and 26 too.
    arrival = datetime(2026, 12, 23, 9, 0, tzinfo=UTC)
    assert rules.unanswered_since(arrival, "Europe/Warsaw", ("PL",)) == datetime(2026, 12, 30, tzinfo=WARSAW)
    assert rules.unanswered_since(arrival, "Europe/Warsaw", ()) == datetime(2026, 12, 26, tzinfo=WARSAW)
