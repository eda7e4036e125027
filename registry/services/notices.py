"""Start a change set's notice: the notice row and one delivery per recipient, in the publish transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import ChangeSet, Delivery, Notice, Subscriber, Subscription, Suppression, Topic
from registry.services import publishing

ADMINISTRATIVE = "administrative"
NON_MATERIAL = "non-material"


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
    """Write the notice and its outbox: the worker sends it, the feed shows it from now on."""
    now = now or now_utc()
    topics = {t.key: t for t in session.scalars(select(Topic).where(Topic.key.in_(topic_keys(change_set))))}
    ordered = [topics[k] for k in topic_keys(change_set) if k in topics]
    notice = Notice(change_set_id=change_set.id, topic_id=ordered[0].id if ordered else None,
                    subject=change_set.title[:300], created_at=now, feed_published_at=now)
    session.add(notice)
    session.flush()
    suppressed = set(session.scalars(select(Suppression.email)))
    chosen: dict[int, tuple[Subscriber, int]] = {}
    for topic in ordered:
        query = select(Subscriber).where(Subscriber.status == "confirmed", Subscriber.deleted_at.is_(None))
        if not topic.is_administrative:
            query = query.join(Subscription).where(Subscription.topic_id == topic.id,
                                                    Subscription.is_subscribed.is_(True))
        for subscriber in session.scalars(query):
            chosen.setdefault(subscriber.id, (subscriber, topic.id))
    session.add_all(
        Delivery(notice_id=notice.id, subscriber_id=subscriber.id, email=subscriber.email, topic_id=topic_id,
                 status="suppressed" if subscriber.email.lower() in suppressed else "queued")
        for subscriber, topic_id in chosen.values()
    )
    session.flush()
    return notice


# A delivery is settled when the provider accepted it, it was suppressed, or it failed for good.
SETTLED = ("sent", "suppressed", "failed")


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


def progress(session: Session, change_set_ids: list[int]) -> dict[int, Progress]:
    """Delivery counts per change set: eligible = sent + suppressed + failed + pending, always."""
    rows = session.execute(
        select(Notice.change_set_id, Delivery.status, func.count())
        .join(Delivery, Delivery.notice_id == Notice.id)
        .where(Notice.change_set_id.in_(change_set_ids))
        .group_by(Notice.change_set_id, Delivery.status)
    )
    counts: dict[int, dict[str, int]] = {i: {} for i in change_set_ids}
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
    """
    now = now or now_utc()
    completed = []
    notices = session.scalars(select(Notice).where(Notice.id.in_(notice_ids),
                                                   Notice.dispatch_completed_at.is_(None)))
    for notice in notices:
        unsettled = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.notice_id == notice.id, Delivery.status.not_in(SETTLED)))
        if unsettled:
            continue
        notice.dispatch_completed_at = now
        change_set = session.get(ChangeSet, notice.change_set_id)
        siblings = session.scalars(select(Notice).where(Notice.change_set_id == change_set.id))
        if change_set.notice_completed_at is None and all(
            n.dispatch_completed_at and n.feed_published_at for n in siblings
        ):
            done = max([now] + [n.feed_published_at for n in change_set_notices(session, change_set)])
            publishing.complete_notice(session, change_set, completed_at=done, now=now)
            completed.append(change_set)
    session.flush()
    return completed


def change_set_notices(session: Session, change_set: ChangeSet) -> list[Notice]:
    return list(session.scalars(select(Notice).where(Notice.change_set_id == change_set.id)
                                .order_by(Notice.id)))
