"""A published change set with a notice to many subscribers, written with set-based core inserts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, insert, literal, select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import ChangeSet, ChangeStatus, Delivery, Notice, Subscriber, Suppression, Topic


@dataclass(frozen=True)
class Dispatch:
    change_set_id: int
    notice_id: int
    emails: list[str]


def email_for(prefix: str, number: int) -> str:
    return f"{prefix}-{number:06d}@example.com"


def notice_with_deliveries(session: Session, count: int, *, prefix: str = "customer",
                           suppressed: set[str] = frozenset()) -> Dispatch:
    """`count` confirmed subscribers and a material notice queued to all of them (suppressed ones
    marked so, as services.notices.start_notice does). Commits."""
    now = now_utc()
    topic = session.scalar(select(Topic).where(Topic.key == "administrative"))
    if topic is None:
        topic = Topic(key="administrative", name="Administrative", is_administrative=True)
        session.add(topic)
    effective = now + timedelta(days=90)
    change_set = ChangeSet(title=f"Changes for {prefix}", summary="What changes, in short.", is_material=True,
                           status=ChangeStatus.SCHEDULED, published_at=now, effective_at=effective,
                           planned_effective_at=effective)
    session.add(change_set)
    session.flush()
    notice = Notice(change_set_id=change_set.id, topic_id=topic.id, subject=change_set.title,
                    created_at=now, feed_published_at=now)
    session.add(notice)
    session.flush()
    emails = [email_for(prefix, i) for i in range(count)]
    first = (session.scalar(select(func.max(Subscriber.id))) or 0) + 1
    session.execute(insert(Subscriber.__table__), [
        {"email": e, "status": "confirmed", "source": "import", "created_at": now, "confirmed_at": now}
        for e in emails
    ])
    if suppressed:
        session.execute(insert(Suppression.__table__), [
            {"email": e, "reason": "bounce", "created_at": now} for e in sorted(suppressed)])
    subscribers = Subscriber.__table__.c
    deliveries = Delivery.__table__
    session.execute(deliveries.insert().from_select(
        ["notice_id", "subscriber_id", "email", "topic_id", "status", "attempts", "is_resent"],
        select(literal(notice.id), subscribers.id, subscribers.email, literal(topic.id),
               literal("queued"), literal(0), literal(False))
        .where(subscribers.id >= first).order_by(subscribers.id),
    ))
    if suppressed:
        session.execute(deliveries.update().where(deliveries.c.notice_id == notice.id,
                                                  deliveries.c.email.in_(sorted(suppressed)))
                        .values(status="suppressed"))
    session.commit()
    return Dispatch(change_set_id=change_set.id, notice_id=notice.id, emails=emails)


def status_counts(session: Session, notice_id: int) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).where(Delivery.notice_id == notice_id)
                           .group_by(Delivery.status)).all()
    session.commit()
    return dict(rows)
