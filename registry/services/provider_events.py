"""SendGrid Event Webhook batches: storing one as it came, and applying stored ones to the deliveries.

The webhook request only stores (`store_batch`); the worker applies (`claim_batches`, `apply_batches`),
a few batches per transaction, so that concurrent posts never wait on each other's row locks and an
event is applied exactly once (its sg_event_id is inserted with ON CONFLICT DO NOTHING in the same
transaction). A delivery's latest event only ever moves forward in event time, whatever order the
batches arrive and are applied in (`domain.provider_events.fold`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.domain import provider_events as rules
from registry.domain.clock import now_utc
from registry.domain.provider_events import ProviderEvent
from registry.models import ChangeSet, Delivery, Notice, Suppression, WebhookBatch, WebhookEvent
from registry.services.notices import SETTLED, settle

BATCHES = WebhookBatch.__table__
EVENTS = WebhookEvent.__table__
SUPPRESSIONS = Suppression.__table__
# A batch whose application failed this often is left alone, its body and error kept for staff.
MAX_ATTEMPTS = 5
# Rows per multi-row INSERT: well under SQLite's limit on bound parameters.
INSERT_CHUNK = 500


@dataclass
class EventsApplied:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    suppressed: int = 0
    # Why events were ignored, with counts: the batch keeps this as its record.
    reasons: Counter = field(default_factory=Counter)
    completed: list[ChangeSet] = field(default_factory=list)

    def ignore(self, reason: str, count: int = 1) -> None:
        self.ignored += count
        self.reasons[reason] += count

    def as_record(self) -> dict:
        return {"applied": self.applied, "duplicates": self.duplicates, "ignored": self.ignored,
                "suppressed": self.suppressed, "ignored_because": dict(sorted(self.reasons.items()))}


def store_batch(session: Session, body: str, events: int, *, now: datetime | None = None) -> WebhookBatch:
    """Keep a verified post exactly as it came; the worker applies it."""
    batch = WebhookBatch(body=body, events=events, received_at=now or now_utc())
    session.add(batch)
    session.flush()
    return batch


def claim_batches(session: Session, *, now: datetime | None = None, up_to: int | None = None,
                  limit: int = 1) -> list[WebhookBatch]:
    """The oldest batches not yet applied, claimed for this transaction (which must also apply them).

    PostgreSQL: the row locks of FOR UPDATE SKIP LOCKED, so workers take different batches and a crash
    releases the claim with everything else. SQLite: the UPDATE is the transaction's first write and
    takes the database's write lock, so a second worker waits, then finds the batches applied.
    """
    due = (select(BATCHES.c.id).where(BATCHES.c.applied_at.is_(None), BATCHES.c.attempts < MAX_ATTEMPTS)
           .order_by(BATCHES.c.id).limit(limit).with_for_update(skip_locked=True))
    if up_to is not None:
        due = due.where(BATCHES.c.id <= up_to)
    if session.get_bind().dialect.name == "postgresql":
        # Evaluated once: inside IN (...) PostgreSQL may run a LIMIT ... SKIP LOCKED subquery again per row.
        due = select(due.cte("due").prefix_with("MATERIALIZED").c.id)
    # (SQLite gets the plain subquery: its driver opens a transaction only for a statement that starts
    # with UPDATE, and a claim outside one would be no claim.)
    claimed = session.scalars(
        update(BATCHES).where(BATCHES.c.id.in_(due), BATCHES.c.applied_at.is_(None))
        .values(claimed_at=now or now_utc()).returning(BATCHES.c.id)
    ).all()
    if not claimed:
        return []
    chosen = select(WebhookBatch).where(WebhookBatch.id.in_(claimed)).order_by(WebhookBatch.id)
    return list(session.scalars(chosen.execution_options(populate_existing=True)))


def apply_batches(session: Session, batches: list[WebhookBatch], *,
                  now: datetime | None = None) -> list[EventsApplied]:
    """Apply claimed batches together and mark each applied, with its record, in the caller's
    transaction. An event id in two of them counts as a duplicate in the later one."""
    now = now or now_utc()
    posts, unreadable = [], []
    for batch in batches:
        try:
            events = json.loads(batch.body)
        except (ValueError, RecursionError):
            events = None
        if isinstance(events, list):
            posts.append((events, batch.received_at))
        else:
            # The request refuses these with a 400; a row stored otherwise (by hand) is recorded, not retried.
            posts.append(([], batch.received_at))
            unreadable.append(len(posts) - 1)
    results = _apply_posts(session, posts, now)
    for index in unreadable:
        results[index].ignore("the body is not a JSON list of events")
    for batch, result in zip(batches, results, strict=True):
        batch.applied_at, batch.outcome, batch.error = now, result.as_record(), None
    session.flush()
    return results


def apply_provider_events(session: Session, events: list, *, now: datetime | None = None,
                          received_at: datetime | None = None) -> EventsApplied:
    """Apply SendGrid events to their deliveries; an event id seen before changes nothing."""
    now = now or now_utc()
    return _apply_posts(session, [(events, received_at or now)], now)[0]


def _apply_posts(session: Session, posts: list[tuple[list, datetime]], now: datetime) -> list[EventsApplied]:
    """Apply the events of several posts at once, set-based; each post gets its own record.

    A delivery whose request went out but whose answer never came (still "sending", or re-queued by
    the worker's recovery) becomes "sent" once an event proves the provider accepted it, so it is not
    sent again. Bounces, drops, spam reports and unsubscribes suppress the address. Deliveries are
    locked (PostgreSQL) in id order before they are read, so that concurrent appliers and the
    dispatcher's own updates take turns in one order.
    """
    results = [EventsApplied() for _ in posts]
    parsed, origin = _parse(posts, results)
    deliveries, mismatched = _deliveries_for(session, parsed)
    recorded = {d.id: d.provider_message_id for d in deliveries.values()}
    fresh = _first_time(session, parsed, deliveries, now)
    new_ids = {e.sg_event_id for e in fresh}
    for event in parsed:
        if event.sg_event_id not in new_ids:
            results[origin[event.sg_event_id]].duplicates += 1

    per_delivery: dict[int, list[ProviderEvent]] = defaultdict(list)
    rows: dict[int, Delivery] = {}
    for event in fresh:
        delivery = deliveries.get(event.sg_event_id)
        result = results[origin[event.sg_event_id]]
        if delivery is None:
            result.ignore(mismatched.get(event.sg_event_id, "no matching delivery"))
        else:
            rows[delivery.id] = delivery
            per_delivery[delivery.id].append(event)
            result.applied += 1
    status_before = {i: d.status for i, d in rows.items()}
    for delivery_id, delivery_events in per_delivery.items():
        _apply(rows[delivery_id], delivery_events)
    session.flush()  # each event's own delivery first: it was sent, not withdrawn by its suppression
    _resent_flags(session, [d for d in rows.values() if d.is_resent or d.status == "sent"], status_before,
                  recorded)

    # Spam reports and unsubscribes may concern no delivery of ours (an earlier mail): they still suppress.
    suppress: dict[str, tuple[str, int]] = {}
    for event in sorted(fresh, key=lambda e: e.order):
        delivery = deliveries.get(event.sg_event_id)
        email = event.email or (delivery.email.lower() if delivery else None)
        if event.kind in rules.SUPPRESSING_EVENTS and email:
            suppress.setdefault(email, (event.kind, origin[event.sg_event_id]))
    added, withdrawn = _suppress(session, {email: kind for email, (kind, _post) in suppress.items()}, now)
    for email in added:
        results[suppress[email][1]].suppressed += 1
    session.flush()
    touched = {d.notice_id for d in rows.values()} | withdrawn
    results[0].completed = settle(session, [n for n in sorted(touched) if _may_complete(session, n)], now=now)
    return results


def _may_complete(session: Session, notice_id: int) -> bool:
    """Whether settle() should count this notice's deliveries (100,000 for a large one): not while a
    row is still to send, found through the partial indexes. The notice row is locked first, as
    settle() does, so that of two appliers settling its last rows at once the second one looks
    after the first committed, and one of them completes the notice."""
    still_open = select(Notice.id).where(Notice.id == notice_id, Notice.dispatch_completed_at.is_(None))
    if session.scalar(still_open.with_for_update()) is None:
        return False
    for status in ("queued", "sending"):
        waiting = select(Delivery.id).where(Delivery.status == status, Delivery.notice_id == notice_id)
        if session.scalar(waiting.limit(1)) is not None:
            return False
    return True


def _parse(posts: list[tuple[list, datetime]],
           results: list[EventsApplied]) -> tuple[list[ProviderEvent], dict[str, int]]:
    """Readable events, each event id once (a post may repeat one), and the post each came in."""
    seen: dict[str, ProviderEvent] = {}
    origin: dict[str, int] = {}
    for index, (events, received_at) in enumerate(posts):
        for raw in events:
            event = rules.parse_event(raw, received_at)
            if isinstance(event, str):
                results[index].ignore(event)
            elif event.sg_event_id in seen:
                results[index].duplicates += 1
            else:
                seen[event.sg_event_id] = event
                origin[event.sg_event_id] = index
    return list(seen.values()), origin


def _deliveries_for(session: Session,
                    events: list[ProviderEvent]) -> tuple[dict[str, Delivery], dict[str, str]]:
    """Each event's delivery, by event id: by our delivery_id custom arg, failing that by the message
    id of the request and the address. Every delivery concerned is locked, in id order. Also returns
    why some events that name a delivery were not matched to it."""
    by_id = {e.delivery_id for e in events if e.delivery_id is not None}
    by_message = {e.message_id for e in events if e.delivery_id is None and e.message_id and e.email}
    found: set[int] = set(by_id)
    if by_message:
        found |= set(session.scalars(select(Delivery.id).where(Delivery.provider_message_id.in_(by_message))))
    rows: dict[int, Delivery] = {}
    for chunk in _chunks(sorted(found), INSERT_CHUNK):
        rows |= {d.id: d for d in session.scalars(
            select(Delivery).where(Delivery.id.in_(chunk)).order_by(Delivery.id)
            .with_for_update().execution_options(populate_existing=True))}
    by_message_and_email = {(d.provider_message_id, d.email.lower()): d for d in rows.values()
                            if d.provider_message_id in by_message}
    chosen: dict[str, Delivery] = {}
    mismatched: dict[str, str] = {}
    for event in events:
        if event.delivery_id is not None:
            delivery = rows.get(event.delivery_id)
            if delivery is not None and event.email is not None and delivery.email.lower() != event.email:
                mismatched[event.sg_event_id] = "delivery_id of another address"
                continue
        else:
            delivery = by_message_and_email.get((event.message_id, event.email))
        if delivery is not None:
            chosen[event.sg_event_id] = delivery
    return chosen, mismatched


def _first_time(session: Session, events: list[ProviderEvent], deliveries: dict[str, Delivery],
                now: datetime) -> list[ProviderEvent]:
    """Record the events; those whose id was recorded before (SendGrid retries, overlapping posts)
    are left out. Sorted by id so that two appliers inserting the same ids wait in one order."""
    ordered = sorted(events, key=lambda e: e.sg_event_id)
    if not ordered:
        return []
    values = []
    for event in ordered:
        delivery = deliveries.get(event.sg_event_id)
        accepted = event.kind in rules.ACCEPTED_EVENTS
        values.append({"sg_event_id": event.sg_event_id, "received_at": now, "event": event.kind,
                       "delivery_id": delivery.id if delivery else None,
                       "message_id": event.message_id if accepted and delivery else None})
    # Many parameter sets on one cached statement: SQLAlchemy sends them as multi-row INSERTs.
    statement = dialect_insert(session)(EVENTS).on_conflict_do_nothing().returning(EVENTS.c.sg_event_id)
    new = set(session.scalars(statement, values))
    return [e for e in ordered if e.sg_event_id in new]


def _apply(delivery: Delivery, events: list[ProviderEvent]) -> None:
    outcome = rules.fold(delivery.last_event, delivery.last_event_at, events)
    delivery.last_event, delivery.last_event_at = outcome.last_event, outcome.last_event_at
    accepted = outcome.accepted
    if accepted is not None and delivery.status not in SETTLED:
        delivery.status = "sent"
        delivery.sent_at = delivery.sent_at or accepted.at
        delivery.error = None
    if accepted is not None and delivery.provider_message_id is None and accepted.message_id:
        delivery.provider_message_id = accepted.message_id


def _resent_flags(session: Session, deliveries: list[Delivery], status_before: dict[int, str],
                  recorded: dict[int, str | None]) -> None:
    """Item 23: the resent flag follows what the accepted events prove (domain.resent_flag)."""
    ids = [d.id for d in deliveries]
    seen: dict[int, set[str]] = defaultdict(set)
    for chunk in _chunks(ids, INSERT_CHUNK):
        for delivery_id, message_id in session.execute(
                select(WebhookEvent.delivery_id, WebhookEvent.message_id).distinct()
                .where(WebhookEvent.delivery_id.in_(chunk), WebhookEvent.message_id.is_not(None))):
            seen[delivery_id].add(message_id)
    for delivery in deliveries:
        delivery.is_resent = rules.resent_flag(delivery.is_resent, status_before[delivery.id],
                                               recorded[delivery.id], seen[delivery.id])


def _suppress(session: Session, reasons: dict[str, str], now: datetime) -> tuple[set[str], set[int]]:
    """Put addresses on the suppression list and withdraw them from notices still waiting to be sent.

    Idempotent even when two appliers suppress the same address at once (ON CONFLICT DO NOTHING, in
    address order). Returns the addresses new on the list, and the notices whose deliveries changed
    (to settle them).
    """
    added: set[str] = set()
    changed: set[int] = set()
    if reasons:
        statement = dialect_insert(session)(SUPPRESSIONS).on_conflict_do_nothing()
        rows = [{"email": e, "reason": reasons[e], "created_at": now} for e in sorted(reasons)]
        added = set(session.scalars(statement.returning(SUPPRESSIONS.c.email), rows))
    # Through the (notice_id, email) index: only notices still being dispatched, only rows not yet claimed.
    open_notices = select(Notice.id).where(Notice.dispatch_completed_at.is_(None))
    by_reason: dict[str, list[str]] = defaultdict(list)
    for email, reason in sorted(reasons.items()):
        by_reason[reason].append(email)
    for reason, emails in sorted(by_reason.items()):
        for chunk in _chunks(emails, INSERT_CHUNK):
            changed |= set(session.scalars(
                update(Delivery)
                .where(Delivery.notice_id.in_(open_notices), Delivery.email.in_(chunk),
                       Delivery.status == "queued")
                .values(status="suppressed", error=f"suppressed after a {reason} event")
                .returning(Delivery.notice_id)
                .execution_options(synchronize_session=False)))
    return added, changed


def dialect_insert(session: Session):
    name = session.get_bind().dialect.name
    return postgresql_insert if name == "postgresql" else sqlite_insert


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
