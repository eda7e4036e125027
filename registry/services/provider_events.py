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

from sqlalchemy import Row, any_, bindparam, inspect, literal, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from registry.domain import provider_events as rules
from registry.domain.clock import now_utc
from registry.domain.provider_events import ProviderEvent
from registry.models import ChangeSet, Delivery, Notice, Suppression, WebhookBatch, WebhookEvent
from registry.services.notices import SETTLED, hold_settling, settle
from registry.services.sql import dialect_insert

BATCHES = WebhookBatch.__table__
EVENTS = WebhookEvent.__table__
SUPPRESSIONS = Suppression.__table__
DELIVERIES = Delivery.__table__
# What applying events reads and writes of a delivery.
DELIVERY_STATE = [DELIVERIES.c[name] for name in (
    "id", "notice_id", "email", "status", "sent_at", "error", "provider_message_id", "last_event",
    "last_event_at", "is_resent")]
INSERT_EVENTS_POSTGRESQL = text(
    "INSERT INTO webhook_events (sg_event_id, received_at, event, delivery_id, message_id) "
    "SELECT * FROM unnest(CAST(:sg_event_id AS varchar[]), CAST(:received_at AS timestamptz[]), "
    "CAST(:event AS varchar[]), CAST(:delivery_id AS integer[]), CAST(:message_id AS varchar[])) "
    "ON CONFLICT DO NOTHING RETURNING sg_event_id")
UPDATE_DELIVERY = (
    update(DELIVERIES).where(DELIVERIES.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), sent_at=bindparam("b_sent_at"), error=bindparam("b_error"),
            provider_message_id=bindparam("b_message_id"), last_event=bindparam("b_last_event"),
            last_event_at=bindparam("b_last_event_at"), is_resent=bindparam("b_is_resent"))
)
# A batch whose application failed this often is left alone, its body and error kept for staff.
MAX_ATTEMPTS = 5


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
    session.flush()  # the reads below are Core statements, which do not flush the session's changes
    results = [EventsApplied() for _ in posts]
    parsed, origin = _parse(posts, results)
    deliveries, mismatched = _deliveries_for(session, parsed)
    fresh = _first_time(session, parsed, deliveries, now)
    new_ids = {e.sg_event_id for e in fresh}
    for event in parsed:
        if event.sg_event_id not in new_ids:
            results[origin[event.sg_event_id]].duplicates += 1

    per_delivery: dict[int, list[ProviderEvent]] = defaultdict(list)
    rows: dict[int, Row] = {}
    for event in fresh:
        delivery = deliveries.get(event.sg_event_id)
        result = results[origin[event.sg_event_id]]
        if delivery is None:
            result.ignore(mismatched.get(event.sg_event_id, "no matching delivery"))
        else:
            rows[delivery.id] = delivery
            per_delivery[delivery.id].append(event)
            result.applied += 1
    # The resent flag needs every message id seen for a flagged delivery. For the others, those seen
    # before are at most the one recorded (an accepted event records its id when none is), so this
    # post's events are enough.
    seen = _accepted_message_ids(session, [i for i, d in rows.items() if d.is_resent])
    changes = [_changes(rows[i], delivery_events, seen.get(i)) for i, delivery_events in per_delivery.items()]
    if changes:
        # One statement for every row, in id order (the rows are locked already); each event's own
        # delivery is updated before its suppression: it was sent, not withdrawn.
        session.execute(UPDATE_DELIVERY, sorted(changes, key=lambda c: c["b_id"]))

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
    for delivery_id in rows:
        # Written with Core: a copy of the row already loaded in this session would be out of date.
        loaded = session.identity_map.get(inspect(Delivery).identity_key_from_primary_key([delivery_id]))
        if loaded is not None:
            session.expire(loaded)
    return results


def _may_complete(session: Session, notice_id: int) -> bool:
    """Whether settle() should count this notice's deliveries (100,000 for a large one): not while a
    row is still to send, found through the partial indexes. The notice's settling lock is taken
    first, as settle() does, so that of two appliers (or an applier and a worker) settling its last
    rows at once the second one looks after the first committed, and one of them completes it."""
    hold_settling(session, [notice_id])
    still_open = select(Notice.id).where(Notice.id == notice_id, Notice.dispatch_completed_at.is_(None))
    if session.scalar(still_open) is None:
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


def _deliveries_for(session: Session, events: list[ProviderEvent]) -> tuple[dict[str, Row], dict[str, str]]:
    """Each event's delivery, by event id: by our delivery_id custom arg, failing that by the message
    id of the request and the address. Every delivery concerned is locked, in id order. Also returns
    why some events that name a delivery were not matched to it."""
    by_id = {e.delivery_id for e in events if e.delivery_id is not None}
    by_message = sorted({e.message_id for e in events if e.delivery_id is None and e.message_id and e.email})
    found: set[int] = set(by_id)
    for chunk in _chunks(session, by_message):
        sent_as = _among(session, DELIVERIES.c.provider_message_id, chunk)
        found |= set(session.scalars(select(DELIVERIES.c.id).where(sent_as)))
    rows: dict[int, Row] = {}
    for chunk in _chunks(session, sorted(found)):
        rows |= {d.id: d for d in session.execute(
            select(*DELIVERY_STATE).where(_among(session, DELIVERIES.c.id, chunk)).order_by(DELIVERIES.c.id)
            .with_for_update())}
    by_message_and_email = {(d.provider_message_id, d.email.lower()): d for d in rows.values()
                            if d.provider_message_id in by_message}
    chosen: dict[str, Row] = {}
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


def _first_time(session: Session, events: list[ProviderEvent], deliveries: dict[str, Row],
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
    if session.get_bind().dialect.name == "postgresql":
        # One statement with five array parameters: a multi-row VALUES of thousands of placeholders
        # costs more to build and parse than to insert.
        columns = {name: [v[name] for v in values] for name in values[0]}
        new = set(session.scalars(INSERT_EVENTS_POSTGRESQL, columns))
    else:
        statement = dialect_insert(session)(EVENTS).on_conflict_do_nothing().returning(EVENTS.c.sg_event_id)
        new = set(session.scalars(statement, values))
    return [e for e in ordered if e.sg_event_id in new]


def _changes(delivery: Row, events: list[ProviderEvent], seen: set[str] | None) -> dict:
    """A delivery's new values after its new events; `seen`: every accepted message id on record for
    it, when it is flagged as resent."""
    outcome = rules.fold(delivery.last_event, delivery.last_event_at, events)
    status, sent_at, error = delivery.status, delivery.sent_at, delivery.error
    message_id = delivery.provider_message_id
    accepted = outcome.accepted
    if accepted is not None and status not in SETTLED:
        status, sent_at, error = "sent", sent_at or accepted.at, None
    if accepted is not None and message_id is None and accepted.message_id:
        message_id = accepted.message_id
    if seen is None:
        seen = {e.message_id for e in events if e.kind in rules.ACCEPTED_EVENTS and e.message_id}
    is_resent = rules.resent_flag(delivery.is_resent, delivery.status, delivery.provider_message_id, seen)
    return {"b_id": delivery.id, "b_status": status, "b_sent_at": sent_at, "b_error": error,
            "b_message_id": message_id, "b_last_event": outcome.last_event,
            "b_last_event_at": outcome.last_event_at, "b_is_resent": is_resent}


def _accepted_message_ids(session: Session, delivery_ids: list[int]) -> dict[int, set[str]]:
    """Item 23: the message ids of every accepted event on record for these deliveries."""
    seen: dict[int, set[str]] = {i: set() for i in delivery_ids}
    for chunk in _chunks(session, sorted(delivery_ids)):
        for delivery_id, message_id in session.execute(
                select(EVENTS.c.delivery_id, EVENTS.c.message_id).distinct()
                .where(_among(session, EVENTS.c.delivery_id, chunk), EVENTS.c.message_id.is_not(None))):
            seen[delivery_id].add(message_id)
    return seen


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
        for chunk in _chunks(session, emails):
            changed |= set(session.scalars(
                update(Delivery)
                .where(Delivery.notice_id.in_(open_notices), Delivery.email.in_(chunk),
                       Delivery.status == "queued")
                .values(status="suppressed", error=f"suppressed after a {reason} event")
                .returning(Delivery.notice_id)
                .execution_options(synchronize_session=False)))
    return added, changed


def _chunks(session: Session, items: list):
    """PostgreSQL takes a list as one array parameter; SQLite needs a placeholder per value, and has a
    limit on them."""
    size = 50_000 if session.get_bind().dialect.name == "postgresql" else 500
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _among(session: Session, column, values: list):
    """column IN values; on PostgreSQL as = ANY(one array parameter)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)
