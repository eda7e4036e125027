"""Objections and approvals of an announced change: kinds, states and their moves, outcomes, references,
the window in which customers may send them, and when an unanswered one is overdue."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from registry.domain.notice import is_business_day

KINDS = {"objection": "Objection", "approval": "Approval"}
ROLES = {"controller": "Controller",
         "processor": "Processor acting for a controller"}
# A draft waits for its address to be confirmed; only then is it received (and has a reference).
DRAFT, RECEIVED, ACKNOWLEDGED, IN_DISCUSSION, RESOLVED = (
    "draft", "received", "acknowledged", "in_discussion", "resolved")
STATES = {DRAFT: "Awaiting confirmation", RECEIVED: "Received", ACKNOWLEDGED: "Acknowledged",
          IN_DISCUSSION: "In discussion", RESOLVED: "Resolved"}
OPEN_STATES = (RECEIVED, ACKNOWLEDGED, IN_DISCUSSION)
# Staff may skip ahead (resolve an objection at once, discuss before acknowledging) but never go back:
# the customer's status page and the proof read the timeline as a one-way story.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    RECEIVED: (ACKNOWLEDGED, IN_DISCUSSION, RESOLVED),
    ACKNOWLEDGED: (IN_DISCUSSION, RESOLVED),
    IN_DISCUSSION: (RESOLVED,),
    RESOLVED: (),
    DRAFT: (),
}
OUTCOMES = {
    "change_withdrawn": "Change withdrawn",
    "withdrawn_for_customer": "Change withdrawn for this customer",
    "alternative_offered": "Alternative offered",
    "customer_accepted": "Customer accepted the change",
    "contract_terminated": "Contract terminated under the DPA",
}
MAX_GROUNDS = 5000
UNANSWERED_BUSINESS_DAYS = 2
_REFERENCE = re.compile(r"OBJ-(\d{4})-(\d{4,})")


class TransitionError(ValueError):
    """A move the objection's state does not allow; the message says why."""


def check_transition(current: str, target: str, outcome: str | None = None) -> None:
    if target not in STATES:
        raise TransitionError(f"Unknown state {target!r}.")
    if target not in TRANSITIONS.get(current, ()):
        raise TransitionError(f"An objection that is {STATES.get(current, current).lower()} cannot "
                              f"become {STATES[target].lower()}.")
    if target == RESOLVED and outcome not in OUTCOMES:
        raise TransitionError("Choose the outcome that resolves it.")
    if target != RESOLVED and outcome is not None:
        raise TransitionError("Only a resolved objection has an outcome.")


def reference(year: int, number: int) -> str:
    """OBJ-2026-0042: the year it was received and its number within that year."""
    if number < 1 or not 1000 <= year <= 9999:
        raise ValueError(f"no reference for year {year} number {number}")
    return f"OBJ-{year}-{number:04d}"


def parse_reference(value: str) -> tuple[int, int] | None:
    match = _REFERENCE.fullmatch(value or "")
    return (int(match[1]), int(match[2])) if match else None


def is_open(deadline: datetime | None, now: datetime, *, announced: bool, withdrawn: bool) -> bool:
    """The form takes objections while the change is announced and not withdrawn, before its deadline
    (exclusive: the first instant after the last included day). No deadline: no objection window."""
    return announced and not withdrawn and deadline is not None and now < deadline


def unanswered_since(received_at: datetime, timezone: str, calendars: tuple[str, ...],
                     days: int = UNANSWERED_BUSINESS_DAYS) -> datetime:
    """The instant an objection received then counts as unanswered: the end of the `days`-th business
    day after the day it arrived, in the legal calendar (the arrival day never counts)."""
    zone = ZoneInfo(timezone)
    day: date = received_at.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, calendars):
            counted += 1
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
