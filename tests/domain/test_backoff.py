"""The webhook retry schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, ... with jitter, for 72 hours."""

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.domain import backoff

START = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_the_schedule_then_giving_up_after_72_hours():
    rng = random.Random(1)
    now, attempts, times = START, 0, []
    while True:
        attempts += 1
        due = backoff.next_attempt(attempts, START, now, rng)
        if due is None:
            break
        times.append(due - now)
        now = due
    assert timedelta(seconds=4) <= times[0] <= timedelta(seconds=6)
    assert timedelta(minutes=4) <= times[1] <= timedelta(minutes=6)
    assert timedelta(hours=8) <= times[6] <= timedelta(hours=12)
    assert now == START + backoff.WINDOW  # the last attempt at the window's end
    assert 10 <= attempts <= 14


@settings(deadline=None)
@given(st.integers(1, 50), st.integers(0, 80 * 3600), st.integers(0, 2**32))
def test_never_past_the_window(attempts, elapsed, seed):
    now = START + timedelta(seconds=elapsed)
    due = backoff.next_attempt(attempts, START, now, random.Random(seed))
    assert due is None or now < due <= START + backoff.WINDOW
