"""Start a change set's notice: the notice row and one delivery per recipient, in the publish transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import ChangeSet, Delivery, Notice, Subscriber, Subscription, Suppression, Topic

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
