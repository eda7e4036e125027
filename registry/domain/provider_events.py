"""SendGrid Event Webhook events: reading one, ordering them, and what they prove about a delivery."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Events that concern a delivery; others (open, click...) are ignored.
PROVIDER_EVENTS = ("processed", "delivered", "deferred", "bounce", "dropped", "spamreport", "unsubscribe")
# Each of these proves the provider had accepted the request: the delivery's outcome is known.
ACCEPTED_EVENTS = ("processed", "delivered", "deferred", "bounce", "dropped")
# After these, the address must never be mailed again.
SUPPRESSING_EVENTS = ("bounce", "dropped", "spamreport", "unsubscribe")
# The order of a message's life, for events stamped in the same second (SendGrid's timestamps are whole
# seconds): accepted, then retried, then delivered or refused, then what the reader did with it.
RANK = {"processed": 0, "deferred": 1, "delivered": 2, "bounce": 3, "dropped": 3, "spamreport": 4,
        "unsubscribe": 5}

CONTROL = re.compile(r"[\x00-\x1f]")
MAX_EVENT_ID = 100
MAX_EMAIL = 320
MAX_MESSAGE_ID = 300


@dataclass(frozen=True)
class ProviderEvent:
    sg_event_id: str
    kind: str
    at: datetime
    email: str | None  # lower-case
    delivery_id: int | None  # our custom arg
    message_id: str | None  # the Mail Send request's X-Message-Id: sg_message_id up to its first dot

    @property
    def order(self) -> tuple[datetime, int, str, str]:
        return (*order_key(self.at, self.kind), self.sg_event_id)


def clean_text(value: object, max_length: int) -> str | None:
    """A string fit for the database (PostgreSQL refuses NUL), or None."""
    if not isinstance(value, str) or not value or len(value) > max_length:
        return None
    return None if CONTROL.search(value) else value


def event_time(value: object, received_at: datetime) -> datetime:
    """The event's Unix timestamp; anything unreadable counts as the moment the batch arrived."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return received_at
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return received_at


def _delivery_id(value: object) -> int | None:
    """Our delivery_id custom arg (SendGrid posts custom args as strings), when it is one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def parse_event(raw: object, received_at: datetime) -> ProviderEvent | str:
    """One element of a posted batch: the event, or the reason it is ignored."""
    if not isinstance(raw, dict):
        return "not an object"
    kind = raw.get("event")
    if not isinstance(kind, str) or kind not in PROVIDER_EVENTS:
        return "not a delivery event"
    sg_event_id = clean_text(raw.get("sg_event_id"), MAX_EVENT_ID)
    if sg_event_id is None:
        return "no usable sg_event_id"
    email = clean_text(raw.get("email"), MAX_EMAIL)
    message = clean_text(raw.get("sg_message_id"), MAX_MESSAGE_ID)
    message_id = message.split(".", 1)[0][:200] if message else None
    return ProviderEvent(sg_event_id=sg_event_id, kind=kind, at=event_time(raw.get("timestamp"), received_at),
                         email=email.lower() if email else None,
                         delivery_id=_delivery_id(raw.get("delivery_id")), message_id=message_id or None)


def order_key(at: datetime, kind: str) -> tuple[datetime, int, str]:
    """Events sort by time, then by their place in a message's life; the name breaks the last tie, so
    that the outcome never depends on the order in which events arrived."""
    return at, RANK.get(kind, len(RANK)), kind


def is_newer(kind: str, at: datetime, last_kind: str | None, last_at: datetime | None) -> bool:
    """Whether an event replaces the delivery's latest one: strictly later, never backwards."""
    if last_at is None:
        return True
    return order_key(at, kind) > order_key(last_at, last_kind or "")


@dataclass(frozen=True)
class Outcome:
    """What a delivery's new events change: its latest event, and the first proof of acceptance."""

    last_event: str | None
    last_event_at: datetime | None
    accepted: ProviderEvent | None


def fold(last_event: str | None, last_event_at: datetime | None, events: Iterable[ProviderEvent]) -> Outcome:
    """Apply events, in any order, to a delivery's latest event; the result is the same for any order."""
    accepted = None
    for event in sorted(events, key=lambda e: e.order):
        if is_newer(event.kind, event.at, last_event, last_event_at):
            last_event, last_event_at = event.kind, event.at
        if accepted is None and event.kind in ACCEPTED_EVENTS:
            accepted = event
    return Outcome(last_event, last_event_at, accepted)


def resent_flag(is_resent: bool, status_before: str, recorded_message_id: str | None,
                event_message_ids: Iterable[str]) -> bool:
    """The proof of notice's "may have it twice" flag, given every accepted event seen for the delivery.

    Each Mail Send request the provider accepts gets its own message id, and SendGrid posts events
    (processed first, within seconds) carrying it. So two message ids among a delivery's accepted events,
    or one that differs from the id the worker was answered with, prove two acceptances: flagged,
    whatever the worker believed. One id in all of them, while no request of ours is out with the
    delivery (it was not "sending" when the events came), proves a single acceptance: the recovery's
    flag is cleared. A second message's event arriving later raises it again.
    """
    ids = set(event_message_ids)
    if recorded_message_id:
        ids.add(recorded_message_id)
    if len(ids) > 1:
        return True
    if is_resent and len(ids) == 1 and status_before != "sending":
        return False
    return is_resent
