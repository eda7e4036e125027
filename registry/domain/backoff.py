"""When a webhook delivery is tried again: a fixed schedule with jitter, for three days."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# After the 1st, 2nd, ... failed attempt; the last step repeats until the window closes.
SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
            timedelta(hours=5), timedelta(hours=10))
WINDOW = timedelta(hours=72)
JITTER = 0.2  # +-20 %, so that endpoints that failed together do not all come back together


def next_attempt(attempts: int, first_attempt_at: datetime, now: datetime,
                 rng: random.Random) -> datetime | None:
    """After `attempts` failed attempts: when to try again, or None when the 72 hours are over."""
    step = SCHEDULE[min(max(attempts, 1), len(SCHEDULE)) - 1]
    delay = step * (1 + rng.uniform(-JITTER, JITTER))
    due = now + delay
    if due > first_attempt_at + WINDOW:
        # One last attempt at the window's end if there is room for it, then give up.
        last = first_attempt_at + WINDOW
        return last if now < last - timedelta(minutes=1) else None
    return due
