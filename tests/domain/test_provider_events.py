"""The pure rules for SendGrid events: reading one, ordering, never backwards, the resent flag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.domain.provider_events import (
    PROVIDER_EVENTS,
    RANK,
    ProviderEvent,
    fold,
    is_newer,
    parse_event,
    resent_flag,
)

ARRIVED = datetime(2026, 6, 1, 10, tzinfo=UTC)
T = int(ARRIVED.timestamp())


def test_a_full_event_is_read():
    raw = {"event": "delivered", "sg_event_id": "e1", "email": "Ann@Example.com", "timestamp": T,
           "delivery_id": "42", "sg_message_id": "abc123.filter0001.16.0"}
    event = parse_event(raw, ARRIVED)
    assert event == ProviderEvent(sg_event_id="e1", kind="delivered", at=ARRIVED, email="ann@example.com",
                                  delivery_id=42, message_id="abc123")


@pytest.mark.parametrize(("raw", "reason"), [
    (None, "not an object"), ([], "not an object"), ("delivered", "not an object"),
    ({"event": "open", "sg_event_id": "o"}, "not a delivery event"),
    ({"event": ["processed"], "sg_event_id": "l"}, "not a delivery event"),
    ({"event": "processed"}, "no usable sg_event_id"),
    ({"event": "processed", "sg_event_id": 5}, "no usable sg_event_id"),
    ({"event": "processed", "sg_event_id": "a\x00b"}, "no usable sg_event_id"),
    ({"event": "processed", "sg_event_id": "x" * 101}, "no usable sg_event_id"),
])
def test_unusable_events_say_why(raw, reason):
    assert parse_event(raw, ARRIVED) == reason


@pytest.mark.parametrize("delivery_id", [True, -1, "-1", "1e3", "9" * 19, 10**30, 1.5, None, {"x": 1}])
def test_a_delivery_id_that_is_not_ours_is_left_out(delivery_id):
    event = parse_event({"event": "bounce", "sg_event_id": "b", "email": "a@example.com",
                         "delivery_id": delivery_id}, ARRIVED)
    assert event.delivery_id is None and event.email == "a@example.com"


@pytest.mark.parametrize("timestamp", [1e300, -1e300, "yesterday", None, True, float("nan"), 10**400])
def test_an_unreadable_time_is_the_time_the_batch_arrived(timestamp):
    event = parse_event({"event": "processed", "sg_event_id": "t", "timestamp": timestamp}, ARRIVED)
    assert event.at == ARRIVED


def test_same_second_events_follow_a_message_s_life():
    assert RANK["processed"] < RANK["deferred"] < RANK["delivered"] < RANK["bounce"] < RANK["spamreport"]
    assert is_newer("delivered", ARRIVED, "deferred", ARRIVED)
    assert not is_newer("deferred", ARRIVED, "delivered", ARRIVED)
    # The same event again is not newer: applying it twice changes nothing.
    assert not is_newer("delivered", ARRIVED, "delivered", ARRIVED)
    assert is_newer("processed", ARRIVED + timedelta(seconds=1), "bounce", ARRIVED)
    assert is_newer("processed", ARRIVED, None, None)


EVENTS = st.lists(st.builds(
    lambda n, kind, second: ProviderEvent(sg_event_id=f"e{n}", kind=kind, email=None, delivery_id=1,
                                          at=ARRIVED + timedelta(seconds=second), message_id="m"),
    st.integers(0, 10**6), st.sampled_from(PROVIDER_EVENTS), st.integers(0, 3)),
    max_size=8, unique_by=lambda e: e.sg_event_id)


@given(events=EVENTS, split=st.integers(0, 8), data=st.data())
def test_the_outcome_does_not_depend_on_arrival_order_or_batching(events, split, data):
    """Any order, cut into two batches applied one after the other, ends where sorting says."""
    shuffled = data.draw(st.permutations(events))
    first = fold(None, None, shuffled[:split])
    second = fold(first.last_event, first.last_event_at, shuffled[split:])
    at_once = fold(None, None, events)
    assert (second.last_event, second.last_event_at) == (at_once.last_event, at_once.last_event_at)
    if events:
        latest = max(events, key=lambda e: e.order)
        assert (at_once.last_event, at_once.last_event_at) == (latest.kind, latest.at)


def test_fold_names_the_first_acceptance_in_event_time():
    late = ProviderEvent("a", "delivered", ARRIVED + timedelta(seconds=5), None, 1, "m")
    early = ProviderEvent("b", "processed", ARRIVED, None, 1, "m")
    report = ProviderEvent("c", "spamreport", ARRIVED - timedelta(seconds=5), None, 1, "m")
    assert fold(None, None, [late, report, early]).accepted == early
    assert fold(None, None, [report]).accepted is None


@pytest.mark.parametrize(("is_resent", "status", "recorded", "seen", "expected"), [
    # Re-queued by recovery, settled by an event before it went out again: once.
    (True, "queued", None, {"m1"}, False),
    # A re-send is out: it may still be accepted.
    (True, "sending", None, {"m1"}, True),
    # The worker's answer to the re-send and the events agree: once.
    (True, "sent", "m2", {"m2"}, False),
    # The first request's events and the re-send's answer: twice.
    (True, "sent", "m2", {"m1"}, True),
    (True, "sent", "m2", {"m1", "m2"}, True),
    # No message id: nothing is proven either way.
    (True, "queued", None, set(), True),
    (False, "sent", "m1", set(), False),
    # Never flagged, but two messages accepted: flagged.
    (False, "sent", None, {"m1", "m2"}, True),
    (False, "sent", "m1", {"m1"}, False),
])
def test_the_resent_flag_follows_what_the_events_prove(is_resent, status, recorded, seen, expected):
    assert resent_flag(is_resent, status, recorded, seen) is expected
