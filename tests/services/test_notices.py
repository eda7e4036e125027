"""Starting a notice (who gets it), settling it (when the notice time is), progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import (
    ChangeStatus,
    Delivery,
    Document,
    Notice,
    NoticePolicy,
    OutgoingMail,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
)
from registry.services import notices, provider_events, publishing

NOW = datetime(2026, 6, 1, 10, tzinfo=UTC)
TOPICS = [("administrative", True, True), ("subprocessors", False, True), ("documents", False, True),
          ("non-material", False, False), ("document:privacy-policy", False, True)]
SUBPROCESSOR = dict(name="Acme Mail", legal_entity="Acme Mail GmbH", address="Street 1, Berlin",
                    contact="privacy@acme.example", purpose="Email delivery",
                    transfer_mechanism="Within the EEA", countries=["DE"])


def make_topics() -> dict[str, Topic]:
    topics = {key: Topic(key=key, name=key.replace("-", " ").title(), is_administrative=admin,
                         is_default_on=default, position=i)
              for i, (key, admin, default) in enumerate(TOPICS)}
    db.session.add_all(topics.values())
    db.session.flush()
    return topics


def make_subscriber(email: str, topics: dict[str, Topic], chosen: tuple[str, ...] = (), *,
                    status: str = "confirmed") -> Subscriber:
    subscriber = Subscriber(email=email, status=status, confirmed_at=NOW if status == "confirmed" else None,
                            deleted_at=NOW if status == "deleted" else None)
    db.session.add(subscriber)
    db.session.flush()
    db.session.add_all(Subscription(subscriber_id=subscriber.id, topic_id=topic.id,
                                    is_subscribed=topic.is_administrative or key in chosen)
                       for key, topic in topics.items())
    db.session.flush()
    return subscriber


def make_document() -> Document:
    policy = NoticePolicy(key="privacy-policy", name="Privacy", length=14, unit="calendar_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=14)
    document = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=policy)
    db.session.add(document)
    db.session.flush()
    return document


def scheduled_change(*, material: bool, document: Document | None = None, subprocessor: str | None = None,
                     title: str = "Spring update", now: datetime = NOW, effective_days: int = 30):
    """A change set published with its notice still to be sent, as the approver's schedule does."""
    change_set = publishing.create_change_set(db.session, title=title, summary="What changes and why.",
                                              is_material=material)
    if document is not None:
        publishing.draft_document_version(db.session, change_set, document, source_md=f"# {title}",
                                          summary="Clearer retention periods.", is_material=material)
    if subprocessor is not None:
        publishing.draft_subprocessor_change(db.session, change_set, subprocessor, "add",
                                             fields=SUBPROCESSOR, summary="Transactional email.")
    publishing.publish(db.session, change_set, published_at=now, notice_completed_at=None,
                       effective_at=now + timedelta(days=effective_days), now=now)
    return change_set


def deliveries(notice: Notice) -> dict[str, Delivery]:
    return {d.email: d for d in db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id))}


@pytest.fixture
def world(app):
    topics = make_topics()
    people = {
        "all@example.com": make_subscriber("all@example.com", topics,
                                           ("subprocessors", "documents", "non-material")),
        "docs@example.com": make_subscriber("docs@example.com", topics, ("documents",)),
        "one-doc@example.com": make_subscriber("one-doc@example.com", topics, ("document:privacy-policy",)),
        "subs@example.com": make_subscriber("subs@example.com", topics, ("subprocessors",)),
        "admin-only@example.com": make_subscriber("admin-only@example.com", topics),
        "pending@example.com": make_subscriber("pending@example.com", topics, ("documents",),
                                               status="pending"),
        "deleted@example.com": make_subscriber("deleted@example.com", topics, ("documents",),
                                               status="deleted"),
    }
    return topics, people, make_document()


def test_material_notice_goes_to_every_confirmed_subscriber_under_administrative(world):
    topics, _people, document = world
    db.session.add(Suppression(email="docs@example.com", reason="bounce"))
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    rows = deliveries(notice)
    assert set(rows) == {"all@example.com", "docs@example.com", "one-doc@example.com", "subs@example.com",
                         "admin-only@example.com"}
    assert {d.topic_id for d in rows.values()} == {topics["administrative"].id}
    assert rows["docs@example.com"].status == "suppressed"
    assert {d.status for e, d in rows.items() if e != "docs@example.com"} == {"queued"}
    assert all(d.attempts == 0 for d in rows.values())
    assert notice.feed_published_at == NOW and notice.dispatch_completed_at is None
    assert change_set.notice_completed_at is None and change_set.status == ChangeStatus.SCHEDULED


def test_non_material_document_notice_goes_to_touched_topics_once(world):
    topics, _people, document = world
    change_set = scheduled_change(material=False, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    rows = deliveries(notice)
    # document:privacy-policy comes first, then documents, then non-material; each address once.
    assert set(rows) == {"all@example.com", "docs@example.com", "one-doc@example.com"}
    assert rows["one-doc@example.com"].topic_id == topics["document:privacy-policy"].id
    assert rows["docs@example.com"].topic_id == topics["documents"].id
    assert rows["all@example.com"].topic_id == topics["documents"].id
    assert notice.topic_id == topics["document:privacy-policy"].id


def test_non_material_subprocessor_notice(world):
    topics, _people, _document = world
    notice = notices.start_notice(db.session, scheduled_change(material=False, subprocessor="acme-mail"),
                                  now=NOW)
    rows = deliveries(notice)
    assert set(rows) == {"all@example.com", "subs@example.com"}
    assert {d.topic_id for d in rows.values()} == {topics["subprocessors"].id}


def test_topic_keys_per_change():
    class Version:
        def __init__(self, slug):
            self.document = type("D", (), {"slug": slug})()

    class Change:
        def __init__(self, material, versions=(), records=()):
            self.is_material, self.document_versions, self.subprocessor_records = material, versions, records

    assert notices.topic_keys(Change(True, [Version("dpa")])) == ["administrative"]
    assert notices.topic_keys(Change(False, [Version("dpa")], [object()])) == [
        "document:dpa", "documents", "subprocessors", "non-material"]
    assert notices.topic_keys(Change(False, [], [object()])) == ["subprocessors", "non-material"]


def test_nobody_to_tell_completes_the_notice_at_once(app):
    make_topics()
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    assert notice.dispatch_completed_at == NOW
    assert change_set.notice_completed_at == NOW
    assert change_set.status == ChangeStatus.IN_NOTICE


def test_everyone_suppressed_completes_the_notice_at_once(app):
    topics = make_topics()
    make_subscriber("gone@example.com", topics)
    # Addresses are suppressed lower-case, whatever case the provider's event used.
    provider_events.apply_provider_events(db.session, [{"event": "spamreport", "sg_event_id": "s1",
                                                        "email": "GONE@Example.com"}], now=NOW)
    assert db.session.scalar(select(Suppression.email)) == "gone@example.com"
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    assert deliveries(notice)["gone@example.com"].status == "suppressed"
    assert change_set.notice_completed_at == NOW


def mark(notice: Notice, status: str, *emails: str) -> None:
    for email in emails:
        deliveries(notice)[email].status = status
    db.session.flush()


def test_settle_completes_only_when_every_delivery_is_settled(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    emails = sorted(deliveries(notice))
    mark(notice, "sent", *emails[:3])
    mark(notice, "sending", emails[3])
    mark(notice, "failed", emails[4])
    later = NOW + timedelta(hours=1)
    assert notices.settle(db.session, [notice.id], now=later) == []
    assert notice.dispatch_completed_at is None and change_set.notice_completed_at is None
    mark(notice, "sent", emails[3])
    done = NOW + timedelta(hours=2)
    assert notices.settle(db.session, [notice.id], now=done) == [change_set]
    assert notice.dispatch_completed_at == done
    assert change_set.notice_completed_at == done
    assert change_set.status == ChangeStatus.IN_NOTICE
    # Settling again changes nothing: the notice time stays the first completion.
    assert notices.settle(db.session, [notice.id], now=done + timedelta(hours=1)) == []
    assert change_set.notice_completed_at == done


def test_settle_waits_for_the_feed_entry(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    notice.feed_published_at = None
    mark(notice, "sent", *deliveries(notice))
    assert notices.settle(db.session, [notice.id], now=NOW + timedelta(hours=1)) == []
    assert notice.dispatch_completed_at is not None
    assert change_set.notice_completed_at is None


def test_late_completion_moves_the_effective_date_and_tells_approvers(world, make_user):
    _topics, _people, document = world
    approver = make_user("approver")
    change_set = scheduled_change(material=True, document=document, effective_days=14)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    planned = change_set.effective_at
    mark(notice, "sent", *deliveries(notice))
    notices.settle(db.session, [notice.id], now=NOW + timedelta(days=2))
    assert change_set.effective_at > planned
    queued = db.session.scalars(select(OutgoingMail).where(OutgoingMail.template == "effective_date_moved"))
    assert [m.to for m in queued] == [approver.email]


def test_progress_reconciles(world):
    _topics, _people, document = world
    db.session.add(Suppression(email="subs@example.com", reason="bounce"))
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    emails = sorted(e for e in deliveries(notice) if e != "subs@example.com")
    mark(notice, "sent", emails[0], emails[1])
    mark(notice, "failed", emails[2])
    mark(notice, "sending", emails[3])
    other = scheduled_change(material=False, document=document, title="Typo")
    result = notices.progress(db.session, [change_set.id, other.id, 999_999])
    counts = result[change_set.id]
    assert (counts.eligible, counts.sent, counts.suppressed, counts.failed, counts.pending) == (5, 2, 1, 1, 1)
    assert counts.eligible == counts.sent + counts.suppressed + counts.failed + counts.pending
    assert not counts.is_complete
    assert result[other.id].eligible == 0 and result[999_999].eligible == 0
    assert notices.progress(db.session, []) == {}


def test_start_notice_is_set_based_for_many_subscribers(app):
    topics = make_topics()
    count = 3000
    db.session.execute(Subscriber.__table__.insert(), [
        {"email": f"s{i}@example.com", "status": "confirmed", "source": "import", "created_at": NOW}
        for i in range(count)])
    change_set = scheduled_change(material=True, document=make_document())
    statements = []

    from sqlalchemy import event

    engine = db.engine

    def count_statement(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count_statement)
    try:
        notice = notices.start_notice(db.session, change_set, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count_statement)
    assert len(statements) < 15
    total = select(func.count()).select_from(Delivery).where(Delivery.notice_id == notice.id)
    # The request writes the first chunk; the worker's steps (services.notices.expand) the rest.
    assert db.session.scalar(total) == notices.FIRST_CHUNK < count
    steps = 0
    while not notices.expand(db.session, notice, now=NOW):
        steps += 1
    assert steps == 0  # one step of EXPAND_CHUNK (10,000) takes the remaining 2,000
    assert db.session.scalar(total) == count
    assert db.session.scalar(select(func.count(func.distinct(Delivery.topic_id)))) == 1
    assert topics["administrative"].id == db.session.scalar(select(Delivery.topic_id).limit(1))
