"""Notices: starting one (its outbox rows, in the publish transaction), settling it, withdrawing it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.domain.notice import bounded_objection_deadline
from registry.models import (
    ChangeSet,
    ChangeSetEvent,
    ChangeStatus,
    Delivery,
    Notice,
    SendAttempt,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
)
from registry.services import organisations, publishing

ADMINISTRATIVE = "administrative"
# Subscribers whose deliveries one step writes: the first step runs in the request that starts the
# notice (FIRST_CHUNK, so that it costs a few milliseconds), the worker runs the others.
FIRST_CHUNK = 1_000
EXPAND_CHUNK = 10_000
NON_MATERIAL = "non-material"

# A delivery is settled when the provider accepted it, it was suppressed, or it failed for good.
SETTLED = ("sent", "suppressed", "failed")


def sent_in() -> ColumnElement[bool]:
    """The send_attempts row is a request that carried the delivery: the delivery's notice, its claim
    token, its id inside the request's range. Of several (a request split after a 400), the latest is
    the one the provider took or refused."""
    return and_(SendAttempt.claim_token == Delivery.claim_token, SendAttempt.notice_id == Delivery.notice_id,
                Delivery.id.between(SendAttempt.first_delivery_id, SendAttempt.last_delivery_id))


# A request carrying the delivery was handed to the provider (recorded just before it left).
HANDED_OVER = exists().where(sent_in())
# Told, or may have been: accepted by the provider, or a request with its message already on the way
# (a claim not yet built into a request has none).
TOLD = or_(Delivery.status == "sent", and_(Delivery.status == "sending", HANDED_OVER))


def topic_keys(change_set: ChangeSet) -> list[str]:
    """Material changes go to everyone (Administrative); others to the topics they touch."""
    if change_set.is_material:
        return [ADMINISTRATIVE]
    keys = [f"document:{v.document.slug}" for v in change_set.document_versions]
    if change_set.document_versions:
        keys.append("documents")
    if change_set.subprocessor_records:
        keys.append("subprocessors")
    return [*keys, NON_MATERIAL]


def start_notice(session: Session, change_set: ChangeSet, *, now: datetime | None = None) -> Notice:
    """Write the notice and the deliveries of its first `FIRST_CHUNK` subscribers; the worker writes
    the rest (`expand`) and sends them; the feed shows the notice from now on.

    Material: every confirmed subscriber, under the Administrative topic. Non-material: each confirmed
    subscriber of a touched topic, once, under the first such topic (its one-click unsubscribe turns
    that topic off). Suppressed addresses get a delivery marked "suppressed", so that eligible =
    sent + suppressed + failed. The rows are written with INSERT ... SELECT, a chunk of subscribers at a
    time, so that the approver's request costs the same at any audience size.
    """
    now = now or now_utc()
    _bound_deadline(change_set)
    keys = topic_keys(change_set)
    first = session.scalar(select(Topic.id).where(Topic.key == keys[0])) if keys else None
    notice = Notice(change_set_id=change_set.id, topic_id=first, subject=change_set.title[:300],
                    created_at=now, feed_published_at=now, is_expanding=True)
    session.add(notice)
    session.flush()
    expand(session, notice, chunk=FIRST_CHUNK, now=now)
    return notice


def expand(session: Session, notice: Notice, *, chunk: int | None = None,
           now: datetime | None = None) -> bool:
    """Write the deliveries of the next `chunk` subscribers (by id) of a notice whose recipients are
    not all written yet; True once they are. Settles the notice when nothing is left to send.

    Idempotent and crash-safe: the step claims its id range by moving `recipients_through` with a
    conditional UPDATE first, in the same transaction as its rows, so a second worker doing the same
    step at the same time updates nothing and writes nothing, and a crash rolls both back. Who receives a
    notice is decided when their chunk is written: a subscriber who confirms or leaves in between is
    counted as they are then, exactly as if the whole notice had been written at that moment.
    """
    now = now or now_utc()
    if not notice.is_expanding:
        return True
    low = notice.recipients_through
    high = session.scalar(select(Subscriber.id).where(Subscriber.id > low).order_by(Subscriber.id)
                          .offset((chunk or EXPAND_CHUNK) - 1).limit(1))
    last = high is None
    claimed = session.execute(
        update(Notice).where(Notice.id == notice.id, Notice.recipients_through == low, Notice.is_expanding)
        .values(recipients_through=low if last else high, is_expanding=not last)
        .execution_options(synchronize_session=False))
    session.expire(notice, ["recipients_through", "is_expanding"])
    if claimed.rowcount != 1:
        return not notice.is_expanding
    within = [Subscriber.id > low] + ([] if last else [Subscriber.id <= high])
    change_set = session.get(ChangeSet, notice.change_set_id)
    if notice.kind == "announcement":
        _write_announcement(session, notice, change_set, within)
    else:
        _announced, told = _announced_and_told(change_set)
        _write_follow_up(session, notice, told, within)
    if last:
        # Before counting what is left: a worker finishing this notice's earlier rows at this moment
        # either committed already or counts after this commit (and sees expansion over).
        hold_settling(session, [notice.id])
        # Designated contacts last, after every subscriber: one delivery per address, a subscriber's
        # own first (the unique (notice, email) would refuse a subscriber's row after a contact's).
        if notice.kind != "announcement":
            _tell_contacts_told(session, notice)
        elif change_set.is_material:
            _add_designated_contacts(session, notice, notice.topic_id)
        waiting = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.notice_id == notice.id, Delivery.status.not_in(SETTLED)))
        if not waiting:
            # Nobody to send to (or everyone suppressed): no worker batch will ever settle it, so do it now.
            settle(session, [notice.id], now=now)
    return last


# The key space of the advisory locks taken by hold_settling (any constant of its own).
SETTLING_LOCK = 0x5E771E


def hold_settling(session: Session, notice_ids: Iterable[int]) -> None:
    """Take turns, until this transaction ends, with anyone else settling these notices.

    Whoever asks whether a notice is complete after recording deliveries (a worker after a request,
    the Event Webhook's applier, the last step of writing its recipients) holds this first, so of two
    doing it at the same moment the second counts after the first committed; without it each can see
    the other's rows still "sending" and nobody ever completes the notice.

    PostgreSQL: a transaction-level advisory lock per notice, taken in id order. Not the notice's row
    lock: the worker writing a notice's next 10,000 recipients holds that for the whole chunk, and
    workers finishing earlier rows of the same notice must not wait for it (they did: with 4 workers,
    sending stalled behind every chunk). SQLite has one writer at a time: nothing to take.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for notice_id in sorted(set(notice_ids)):
        session.execute(select(func.pg_advisory_xact_lock(SETTLING_LOCK, notice_id)))


def audience(session: Session, change_set: ChangeSet) -> tuple[int, int]:
    """(recipients, of whom suppressed) the notice of `change_set` would have if it started now, counted
    with the rules `start_notice` writes by, without writing a row: what the schedule page shows before
    the approver confirms, in one query at any audience size."""
    keys = topic_keys(change_set)
    topics = list(session.scalars(select(Topic).where(Topic.key.in_(keys))))
    chosen = select(func.lower(Subscriber.email).label("email")).where(
        Subscriber.status == "confirmed", Subscriber.deleted_at.is_(None))
    if not change_set.is_material and not any(t.is_administrative for t in topics):
        chosen = chosen.where(exists().where(Subscription.subscriber_id == Subscriber.id,
                                             Subscription.topic_id.in_([t.id for t in topics]),
                                             Subscription.is_subscribed.is_(True)))
    emails = chosen.subquery()
    total, suppressed = session.execute(
        select(func.count(), func.count(Suppression.email)).select_from(emails)
        .outerjoin(Suppression, Suppression.email == emails.c.email)).one()
    if change_set.is_material:
        contacts = set(organisations.designated_contacts(session))
        if contacts:
            contacts -= set(session.scalars(select(emails.c.email).where(emails.c.email.in_(contacts))))
            total += len(contacts)
            suppressed += len(set(session.scalars(select(Suppression.email).where(
                Suppression.email.in_(contacts)))))
    return total, suppressed


def unexpanded() -> Select:
    """Notices whose recipients are not all written yet, oldest first."""
    return select(Notice).where(Notice.is_expanding).order_by(Notice.id)


def _write_announcement(session: Session, notice: Notice, change_set: ChangeSet, within: list) -> None:
    keys = topic_keys(change_set)
    topics = {t.key: t for t in session.scalars(select(Topic).where(Topic.key.in_(keys)))}
    ordered = [topics[k] for k in keys if k in topics]
    if change_set.is_material:
        _insert_deliveries(session, notice, ordered[0].id if ordered else None, within, everyone=True,
                           first=True)
    else:
        for index, topic in enumerate(ordered):
            _insert_deliveries(session, notice, topic.id, within, everyone=topic.is_administrative,
                               first=index == 0)


def _column_defaults(skip: set[str]) -> dict[str, object]:
    """Python-side column defaults, which INSERT ... SELECT does not apply on its own."""
    values = {}
    for column in Delivery.__table__.columns:
        if column.name in skip or column.default is None or column.primary_key:
            continue
        default = column.default
        value = default.arg(None) if default.is_callable else default.arg
        values[column.name] = literal(value, type_=column.type)
    return values


def _insert_deliveries(session: Session, notice: Notice, topic_id: int | None, within: list, *,
                       everyone: bool, first: bool) -> None:
    """One INSERT ... SELECT. Joins, not IN-subqueries: right after a bulk import the planner's row
    estimates are stale, and an index lookup per subscriber stays fast whatever it believes.
    Suppression.email is stored lower-case (the webhook lower-cases it)."""
    chosen = {
        "notice_id": literal(notice.id),
        "subscriber_id": Subscriber.id,
        "email": Subscriber.email,
        "topic_id": literal(topic_id, type_=Delivery.topic_id.type),
        "status": case((Suppression.email.is_not(None), "suppressed"), else_="queued"),
    }
    chosen |= _column_defaults(set(chosen))
    query = (select(*chosen.values())
             .outerjoin(Suppression, Suppression.email == func.lower(Subscriber.email))
             .where(Subscriber.status == "confirmed", Subscriber.deleted_at.is_(None), *within))
    if not first:
        already = exists().where(Delivery.notice_id == notice.id, Delivery.email == Subscriber.email)
        query = query.where(~already)
    if not everyone:
        query = query.join(Subscription, and_(Subscription.subscriber_id == Subscriber.id,
                                              Subscription.topic_id == topic_id,
                                              Subscription.is_subscribed.is_(True)))
    session.execute(insert(Delivery).from_select(list(chosen), query))


def _add_designated_contacts(session: Session, notice: Notice, topic_id: int | None) -> None:
    """Customer organisations' designated contacts receive every material notice, subscribed or not;
    one delivery per address (a subscriber already has one). They have no subscription, so no
    unsubscribe link (notify.messages.recipients)."""
    contacts = organisations.designated_contacts(session)
    if not contacts:
        return
    already = set(session.scalars(select(func.lower(Delivery.email)).where(
        Delivery.notice_id == notice.id, func.lower(Delivery.email).in_(contacts))))
    suppressed = set(session.scalars(select(Suppression.email).where(Suppression.email.in_(contacts))))
    for email in contacts:
        if email not in already:
            session.add(Delivery(notice_id=notice.id, subscriber_id=None, email=email, topic_id=topic_id,
                                 status="suppressed" if email in suppressed else "queued"))
    session.flush()


@dataclass(frozen=True)
class Progress:
    eligible: int
    sent: int
    suppressed: int
    failed: int

    @property
    def settled(self) -> int:
        return self.sent + self.suppressed + self.failed

    @property
    def pending(self) -> int:
        return self.eligible - self.settled

    @property
    def is_complete(self) -> bool:
        return self.pending == 0


def progress(session: Session, change_set_ids: list[int]) -> dict[int, Progress]:
    """Delivery counts per change set: eligible = sent + suppressed + failed + pending, always."""
    counts: dict[int, dict[str, int]] = {i: {} for i in change_set_ids}
    if change_set_ids:
        rows = session.execute(
            select(Notice.change_set_id, Delivery.status, func.count())
            .join(Delivery, Delivery.notice_id == Notice.id)
            .where(Notice.change_set_id.in_(change_set_ids))
            .group_by(Notice.change_set_id, Delivery.status)
        )
        for change_set_id, status, count in rows:
            counts[change_set_id][status] = count
    return {
        i: Progress(eligible=sum(c.values()), sent=c.get("sent", 0), suppressed=c.get("suppressed", 0),
                    failed=c.get("failed", 0))
        for i, c in counts.items()
    }


def settle(session: Session, notice_ids: list[int], *, now: datetime | None = None) -> list[ChangeSet]:
    """Mark notices whose every delivery is settled as dispatched, and complete their change sets.

    The notice time the notice-period rule counts from is the later of the dispatch completion and
    the feed entry. Returns the change sets whose notice completed now.

    Whoever settles a notice holds its settling lock (`hold_settling`), so workers settling batches of
    the same notice at the same moment take turns: the second one counts after the first committed,
    and exactly one of them completes the notice.
    """
    now = now or now_utc()
    completed = []
    if not notice_ids:
        return completed
    hold_settling(session, notice_ids)
    notices = list(session.scalars(
        select(Notice).where(Notice.id.in_(notice_ids), Notice.dispatch_completed_at.is_(None),
                             Notice.is_expanding.is_(False))
        .order_by(Notice.id).with_for_update()
    ))
    for notice in notices:
        unsettled = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.notice_id == notice.id, Delivery.status.not_in(SETTLED)))
        if unsettled:
            continue
        notice.dispatch_completed_at = now
        session.flush()
        change_set = session.get(ChangeSet, notice.change_set_id)
        # Only announcements give the notice: a date-moved or withdrawal notice never delays it.
        siblings = [n for n in change_set_notices(session, change_set) if n.kind == "announcement"]
        waiting = change_set.notice_completed_at is None and change_set.status != ChangeStatus.WITHDRAWN
        if waiting and siblings and all(n.dispatch_completed_at and n.feed_published_at for n in siblings):
            done = max([n.dispatch_completed_at for n in siblings] + [n.feed_published_at for n in siblings])
            publishing.complete_notice(session, change_set, completed_at=done, now=now)
            _bound_deadline(change_set)
            completed.append(change_set)
    session.flush()
    return completed


def change_set_notices(session: Session, change_set: ChangeSet) -> list[Notice]:
    return list(session.scalars(select(Notice).where(Notice.change_set_id == change_set.id)
                                .order_by(Notice.id)))


def cancel_unsent(session: Session, change_set: ChangeSet, *, now: datetime | None = None) -> int:
    """A withdrawn change is not announced further: its queued deliveries fail with that reason.

    Deliveries already in flight are left to the worker, so that what the provider accepted is
    recorded; every delivery stays accounted for (eligible = sent + suppressed + failed).
    """
    now = now or now_utc()
    ids = [n.id for n in change_set_notices(session, change_set)]
    if not ids:
        return 0
    # Nobody else is told of it: recipients not yet written never will be.
    session.execute(update(Notice).where(Notice.id.in_(ids), Notice.is_expanding)
                    .values(is_expanding=False).execution_options(synchronize_session=False))
    result = session.execute(
        update(Delivery)
        .where(Delivery.notice_id.in_(ids), Delivery.status == "queued")
        .values(status="failed", error="not sent: the change was withdrawn")
        .execution_options(synchronize_session=False)
    )
    settle(session, ids, now=now)
    return result.rowcount


def start_withdrawal_notice(session: Session, change_set: ChangeSet, *,
                            now: datetime | None = None) -> Notice | None:
    """Tell everyone who was sent the announcement that the change is withdrawn.

    Recipients are those whose announcement the provider accepted or is being sent (TOLD), still
    subscribed and not suppressed since (a suppressed address gets a "suppressed" delivery, as for any
    notice).
    """
    now = now or now_utc()
    announced, told = _announced_and_told(change_set)
    if not session.scalar(select(func.count()).select_from(told)):
        return None
    notice = Notice(change_set_id=change_set.id, kind="withdrawal", created_at=now, feed_published_at=now,
                    topic_id=session.scalar(select(Notice.topic_id).where(Notice.id.in_(announced)).limit(1)),
                    subject=f"Withdrawn: {change_set.title}"[:300],
                    reason=withdrawal_reasons(session, [change_set.id]).get(change_set.id, ""))
    _tell_those_told(session, notice, now)  # settles at once when every recipient is suppressed
    return notice


def _announced_and_told(change_set: ChangeSet):
    """The change's announcement notices, and who was told by them (TOLD) with the topic they were
    told under: the recipients of every follow-up notice (a moved date, a withdrawal)."""
    announced = select(Notice.id).where(Notice.change_set_id == change_set.id, Notice.kind == "announcement")
    told = (select(Delivery.subscriber_id, func.min(Delivery.topic_id).label("topic_id"))
            .where(Delivery.notice_id.in_(announced), TOLD)
            .group_by(Delivery.subscriber_id).subquery())
    return announced, told


def _tell_those_told(session: Session, notice: Notice, now: datetime) -> None:
    """Write a follow-up notice and the deliveries of its first chunk of those told (`expand` writes
    the rest); settled at once when nobody is left to send to."""
    notice.is_expanding = True
    session.add(notice)
    session.flush()
    expand(session, notice, chunk=FIRST_CHUNK, now=now)


def _write_follow_up(session: Session, notice: Notice, told, within: list) -> None:
    """One delivery per subscriber told and still subscribed (a suppressed address gets a "suppressed"
    one), under the topic they were told under."""
    chosen = {
        "notice_id": literal(notice.id),
        "subscriber_id": Subscriber.id,
        "email": Subscriber.email,
        "topic_id": told.c.topic_id,
        "status": case((Suppression.email.is_not(None), "suppressed"), else_="queued"),
    }
    chosen |= _column_defaults(set(chosen))
    query = (select(*chosen.values()).select_from(told)
             .join(Subscriber, Subscriber.id == told.c.subscriber_id)
             .outerjoin(Suppression, Suppression.email == func.lower(Subscriber.email))
             .where(Subscriber.status == "confirmed", Subscriber.deleted_at.is_(None), *within))
    session.execute(insert(Delivery).from_select(list(chosen), query))


def _tell_contacts_told(session: Session, notice: Notice) -> None:
    """Designated contacts (deliveries without a subscriber) who were told of the change are told of
    its follow-ups too, whether or not they are still designated."""
    announced = select(Notice.id).where(Notice.change_set_id == notice.change_set_id,
                                        Notice.kind == "announcement")
    told = (select(Delivery.email, func.min(Delivery.topic_id).label("topic_id"))
            .where(Delivery.notice_id.in_(announced), Delivery.subscriber_id.is_(None), TOLD)
            .group_by(Delivery.email).subquery())
    chosen = {
        "notice_id": literal(notice.id),
        "subscriber_id": literal(None, type_=Delivery.subscriber_id.type),
        "email": told.c.email,
        "topic_id": told.c.topic_id,
        "status": case((Suppression.email.is_not(None), "suppressed"), else_="queued"),
    }
    chosen |= _column_defaults(set(chosen))
    query = (select(*chosen.values()).select_from(told)
             .outerjoin(Suppression, Suppression.email == func.lower(told.c.email))
             .where(~exists().where(Delivery.notice_id == notice.id, Delivery.email == told.c.email)))
    session.execute(insert(Delivery).from_select(list(chosen), query))


def _bound_deadline(change_set: ChangeSet) -> None:
    """The deadline publishing computes from the policies, never after the effective date: a change that
    takes effect sooner (a non-material one may at once) ends the window then."""
    change_set.objection_deadline_at = bounded_objection_deadline(change_set.objection_deadline_at,
                                                                  change_set.effective_at)


def effective_date_moved(session: Session, change_set: ChangeSet, *, before: datetime, reason: str,
                         now: datetime | None = None) -> Notice:
    """The effective date moved: the objection deadline moves with it, and everyone already told is told.

    Called by publishing._move_effective_date after it changed the date. The change set's row is
    written first (flush), so it is locked before the recipients are read: a worker building a request
    either committed its deliveries as "sending" before (they are told here) or waits, then reads the
    new plan (notify.messages.current_plan).
    """
    now = now or now_utc()
    basis = change_set.notice_completed_at or now
    change_set.objection_deadline_at = bounded_objection_deadline(
        publishing.objection_deadline_for(session, change_set, basis), change_set.effective_at)
    session.flush()
    return start_date_moved_notice(session, change_set, before=before, reason=reason, now=now)


def start_date_moved_notice(session: Session, change_set: ChangeSet, *, before: datetime, reason: str,
                            now: datetime | None = None) -> Notice:
    """A short notice of the new date to everyone whose announcement went out (or may have).

    Written even when nobody was told yet (then it settles at once): the date-moved notices are the
    plan's history in the proof and the feed. Recipients are those whose announcement was accepted or is
    on its way (TOLD), still subscribed; a suppressed address gets a "suppressed" delivery.
    """
    now = now or now_utc()
    announced, _told = _announced_and_told(change_set)
    notice = Notice(change_set_id=change_set.id, kind="date_moved", created_at=now, feed_published_at=now,
                    topic_id=session.scalar(select(Notice.topic_id).where(Notice.id.in_(announced)).limit(1)),
                    subject=f"Date moved: {change_set.title}"[:300], reason=reason, moved_from_at=before,
                    moved_to_at=change_set.effective_at)
    _tell_those_told(session, notice, now)  # settles at once when nobody was told yet
    return notice


def withdrawal_reasons(session: Session, change_set_ids: list[int]) -> dict[int, str]:
    """Why each change was withdrawn, as the approver wrote it on the withdrawal (empty if not said)."""
    if not change_set_ids:
        return {}
    return {change_set_id: note for change_set_id, note in session.execute(
        select(ChangeSetEvent.change_set_id, ChangeSetEvent.note)
        .where(ChangeSetEvent.change_set_id.in_(change_set_ids), ChangeSetEvent.action == "withdrawn")
        .order_by(ChangeSetEvent.id))}


def withdrawn_change_sets(session: Session, now: datetime, *, limit: int = 200) -> list[ChangeSet]:
    """Announced changes withdrawn since: the change log and the feeds say so, with the reason."""
    return list(session.scalars(
        select(ChangeSet).where(ChangeSet.published_at.is_not(None), ChangeSet.published_at <= now,
                                ChangeSet.status == ChangeStatus.WITHDRAWN, ChangeSet.withdrawn_at <= now)
        .order_by(ChangeSet.withdrawn_at.desc(), ChangeSet.id.desc()).limit(limit)))
