"""Proof of notice: when each change's notice started and completed, and what happened to every recipient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Label, Select, func, select
from sqlalchemy.orm import Session

from registry.models import ChangeSet, ChangeSetEvent, Delivery, MessageBody, Notice, SendAttempt
from registry.services import objections
from registry.services.notices import SETTLED, sent_in

# Waiting to be sent, or sent without an answer yet: the worker or the webhook still owes an outcome.
PENDING = ("queued", "sending")
STATUSES = (*SETTLED, *PENDING)


@dataclass
class Counts:
    """Deliveries by status. `eligible` is counted on its own so that the equation can be checked."""

    eligible: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.by_status.get("sent", 0)

    @property
    def suppressed(self) -> int:
        return self.by_status.get("suppressed", 0)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def pending(self) -> int:
        return sum(self.by_status.get(s, 0) for s in PENDING)

    @property
    def settled(self) -> int:
        return self.sent + self.suppressed + self.failed

    @property
    def unknown(self) -> dict[str, int]:
        return {s: n for s, n in self.by_status.items() if s not in STATUSES}

    @property
    def accounted(self) -> int:
        return sum(self.by_status.values())

    def add(self, other: Counts) -> None:
        self.eligible += other.eligible
        for status, n in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + n


@dataclass
class NoticeProof:
    notice: Notice
    counts: Counts
    resent: int
    sent_without_time: int


@dataclass(frozen=True)
class PlanStep:
    """One step of the plan's history: announced, a date moved, withdrawn."""

    kind: str
    at: datetime | None
    effective_at: datetime | None
    previous_effective_at: datetime | None = None
    reason: str = ""
    # Who took the step (scheduled, withdrew); a move is the system's. An announcement's approver too.
    by: str = ""
    approved_by: str = ""


@dataclass
class Proof:
    change_set: ChangeSet
    notices: list[NoticeProof]
    totals: Counts
    problems: list[str]
    history: list[PlanStep] = field(default_factory=list)
    # Objections and approvals received for the change, with their state and outcome.
    objections: list[dict] = field(default_factory=list)

    @property
    def is_reconciled(self) -> bool:
        return not self.problems


def _counts(session: Session, notice_ids: list[int]) -> dict[int, Counts]:
    counts = {i: Counts() for i in notice_ids}
    if not notice_ids:
        return counts
    for notice_id, total in session.execute(
        select(Delivery.notice_id, func.count()).where(Delivery.notice_id.in_(notice_ids))
        .group_by(Delivery.notice_id)
    ):
        counts[notice_id].eligible = total
    for notice_id, status, n in session.execute(
        select(Delivery.notice_id, Delivery.status, func.count()).where(Delivery.notice_id.in_(notice_ids))
        .group_by(Delivery.notice_id, Delivery.status)
    ):
        counts[notice_id].by_status[status] = n
    return counts


def _per_notice(session: Session, notice_ids: list[int], *conditions) -> dict[int, int]:
    if not notice_ids:
        return {}
    return dict(session.execute(
        select(Delivery.notice_id, func.count()).where(Delivery.notice_id.in_(notice_ids), *conditions)
        .group_by(Delivery.notice_id)
    ).all())


def overview(session: Session, *, limit: int = 200) -> list[tuple[ChangeSet, Counts, list[Notice]]]:
    """Every change set with a notice, newest notice first, with its delivery counts."""
    notices = list(session.scalars(select(Notice).order_by(Notice.created_at.desc(), Notice.id.desc())))
    by_change: dict[int, list[Notice]] = {}
    for notice in notices:
        by_change.setdefault(notice.change_set_id, []).append(notice)
    change_ids = list(by_change)[:limit]
    change_sets = {c.id: c for c in session.scalars(select(ChangeSet).where(ChangeSet.id.in_(change_ids)))}
    counts = _counts(session, [n.id for i in change_ids for n in by_change[i]])
    result = []
    for change_id in change_ids:
        total = Counts()
        for notice in by_change[change_id]:
            total.add(counts[notice.id])
        result.append((change_sets[change_id], total, by_change[change_id]))
    return result


def proof(session: Session, change_set_id: int) -> Proof | None:
    change_set = session.get(ChangeSet, change_set_id)
    if change_set is None:
        return None
    notices = list(session.scalars(select(Notice).where(Notice.change_set_id == change_set_id)
                                   .order_by(Notice.id)))
    ids = [n.id for n in notices]
    counts = _counts(session, ids)
    resent = _per_notice(session, ids, Delivery.is_resent.is_(True))
    no_time = _per_notice(session, ids, Delivery.status == "sent", Delivery.sent_at.is_(None))
    rows = [NoticeProof(n, counts[n.id], resent.get(n.id, 0), no_time.get(n.id, 0)) for n in notices]
    totals = Counts()
    for row in rows:
        totals.add(row.counts)
    return Proof(change_set, rows, totals, _problems(change_set, rows), plan_history(session, change_set),
                 objections.for_proof(session, change_set))


def plan_history(session: Session, change_set: ChangeSet) -> list[PlanStep]:
    """First announced date (who approved and scheduled it), each move with its reason and time, the
    withdrawal. Every move writes a date-moved notice (even with nobody to tell), so they are read there."""
    if change_set.published_at is None:
        return []
    events = session.scalars(select(ChangeSetEvent).where(ChangeSetEvent.change_set_id == change_set.id)
                             .order_by(ChangeSetEvent.id)).all()
    latest = {event.action: event for event in events}
    steps = [PlanStep("announced", change_set.published_at, change_set.planned_effective_at,
                      by=latest["scheduled"].actor if "scheduled" in latest else "",
                      approved_by=latest["approved"].actor if "approved" in latest else "")]
    moves = session.scalars(select(Notice).where(Notice.change_set_id == change_set.id,
                                                 Notice.kind == "date_moved").order_by(Notice.id))
    steps += [PlanStep("moved", move.created_at, move.moved_to_at, move.moved_from_at, move.reason, "system")
              for move in moves]
    if change_set.withdrawn_at is not None:
        event = latest.get("withdrawn")
        steps.append(PlanStep("withdrawn", change_set.withdrawn_at, None, reason=event.note if event else "",
                              by=event.actor if event else ""))
    return steps


def sent_message(session: Session, delivery_id: int) -> tuple[Delivery, MessageBody, dict] | None:
    """A delivery, the stored message and its own values as the last request that carried it had them
    (send_attempts, the latest of its claim token holding it); None before it was handed to the provider.
    Only the delivery's entry of the request's values is read (a JSON path in the database)."""
    request = session.execute(
        select(Delivery, SendAttempt.message_sha256, SendAttempt.personalizations[str(delivery_id)])
        .join(SendAttempt, sent_in()).where(Delivery.id == delivery_id)
        .order_by(SendAttempt.id.desc()).limit(1)).first()
    if request is None or request[1] is None:
        return None
    delivery, sha256, values = request
    return delivery, session.get(MessageBody, sha256), values or {}


def _problems(change_set: ChangeSet, rows: list[NoticeProof]) -> list[str]:
    """What would make this proof untrustworthy; an empty list means every recipient is accounted for."""
    problems = []
    for row in rows:
        counts, label = row.counts, f"Notice {row.notice.id}"
        if counts.accounted != counts.eligible:
            problems.append(f"{label}: {counts.eligible} eligible but {counts.accounted} counted by status.")
        for status, n in counts.unknown.items():
            problems.append(f"{label}: {n} deliveries have the unknown status {status!r}.")
        if row.notice.dispatch_completed_at is not None and counts.pending:
            problems.append(f"{label}: recorded as dispatched, yet {counts.pending} deliveries are "
                            "not settled.")
        if row.sent_without_time:
            problems.append(f"{label}: {row.sent_without_time} sent deliveries have no acceptance time.")
        if row.notice.feed_published_at is None:
            problems.append(f"{label}: no feed entry time.")
    # Date-moved and withdrawal notices are sent after the notice completed; only announcements count.
    unfinished = [r for r in rows
                  if r.notice.dispatch_completed_at is None and r.notice.kind == "announcement"]
    if change_set.notice_completed_at is not None and unfinished:
        problems.append("The change's notice is recorded complete, but some of its notices are still "
                        "being sent.")
    return problems


def recipients_query(change_set_id: int, *, status: str = "", email: str = "") -> Select:
    query = (select(Delivery).join(Notice, Notice.id == Delivery.notice_id)
             .where(Notice.change_set_id == change_set_id).order_by(Delivery.id))
    if status:
        query = query.where(Delivery.status == status)
    if email:
        query = query.where(Delivery.email.contains(email.lower(), autoescape=True))
    return query


def message_sha256() -> Label:
    """The message of the last request that carried the delivery (None before one did), per row of a
    query of deliveries: an index lookup by claim token."""
    return (select(SendAttempt.message_sha256).where(sent_in()).order_by(SendAttempt.id.desc()).limit(1)
            .scalar_subquery().label("message_sha256"))


def recipients_page(session: Session, change_set_id: int, *, page: int, per_page: int, status: str = "",
                    email: str = "") -> tuple[list[tuple[Delivery, str | None]], int]:
    """A page of (delivery, its message's SHA-256) and the number of matching deliveries."""
    query = recipients_query(change_set_id, status=status, email=email)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    page_query = query.add_columns(message_sha256()).offset((page - 1) * per_page).limit(per_page)
    rows = [(delivery, sha256) for delivery, sha256 in session.execute(page_query)]
    return rows, total


EXPORT_FIELDS = ("delivery_id", "notice_id", "email", "status", "provider_message_id", "sent_at",
                 "last_event", "last_event_at", "attempts", "resent", "error", "message_sha256")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_rows(session: Session, change_set_id: int) -> Iterator[dict]:
    """Every recipient, streamed from the database in chunks (a notice may have 1,000,000): plain rows,
    not ORM objects, so memory stays flat and a row costs microseconds."""
    columns = (Delivery.id, Delivery.notice_id, Delivery.email, Delivery.status, Delivery.provider_message_id,
               Delivery.sent_at, Delivery.last_event, Delivery.last_event_at, Delivery.attempts,
               Delivery.is_resent, Delivery.error, message_sha256())
    query = recipients_query(change_set_id).with_only_columns(*columns).execution_options(yield_per=5000)
    for row in session.execute(query):
        yield {
            "delivery_id": row.id, "notice_id": row.notice_id, "email": row.email,
            "status": row.status, "provider_message_id": row.provider_message_id,
            "sent_at": _iso(row.sent_at), "last_event": row.last_event,
            "last_event_at": _iso(row.last_event_at), "attempts": row.attempts,
            "resent": bool(row.is_resent), "error": row.error,
            "message_sha256": row.message_sha256,
        }


def summary(item: Proof) -> dict:
    """The proof's header as JSON: times, reconciled counts and the hash of the bodies sent."""
    change_set = item.change_set
    return {
        "change_set": {"id": change_set.id, "title": change_set.title, "is_material": change_set.is_material,
                       "status": change_set.status, "notice_started_at": _iso(change_set.published_at),
                       "notice_completed_at": _iso(change_set.notice_completed_at),
                       "effective_at": _iso(change_set.effective_at),
                       "objection_deadline_at": _iso(change_set.objection_deadline_at)},
        "plan_history": [{"kind": step.kind, "at": _iso(step.at), "effective_at": _iso(step.effective_at),
                          "previous_effective_at": _iso(step.previous_effective_at), "reason": step.reason,
                          "by": step.by, "approved_by": step.approved_by}
                         for step in item.history],
        "notices": [{"id": row.notice.id, "kind": row.notice.kind, "subject": row.notice.subject,
                     "started_at": _iso(row.notice.created_at),
                     "feed_published_at": _iso(row.notice.feed_published_at),
                     "dispatch_completed_at": _iso(row.notice.dispatch_completed_at),
                     "body_sha256": row.notice.body_sha256 or None, "resent": row.resent,
                     **_count_fields(row.counts)} for row in item.notices],
        "objections": [{**entry, "received_at": _iso(entry["received_at"])} for entry in item.objections],
        "totals": _count_fields(item.totals),
        "reconciled": item.is_reconciled,
        "problems": item.problems,
    }


def _count_fields(counts: Counts) -> dict:
    return {"eligible": counts.eligible, "sent": counts.sent, "suppressed": counts.suppressed,
            "failed": counts.failed, "pending": counts.pending}
