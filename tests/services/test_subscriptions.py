"""Subscribing: double opt-in, the 3-a-day limit, topic choices, signed links and the new-topic rule."""

import hashlib
import struct
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, insert, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    ChangeSet,
    Delivery,
    MailQuota,
    Notice,
    OutgoingMail,
    Subscriber,
    Subscription,
    Topic,
)
from registry.models.subscribers import ConfirmationToken
from registry.services import subscriptions
from registry.services.subscriptions import SubscriptionError

TOPICS = [("administrative", "Administrative", True, True), ("subprocessors", "Sub-processors", False, True),
          ("documents", "Document updates", False, True), ("non-material", "Non-material", False, False)]


@pytest.fixture
def topics(app):
    rows = {key: Topic(key=key, name=name, is_administrative=admin, is_default_on=default, position=i)
            for i, (key, name, admin, default) in enumerate(TOPICS)}
    db.session.add_all(rows.values())
    db.session.commit()
    return rows


def mails(to=None):
    """The mails queued for sending (a refused request leaves a dropped row, never sent)."""
    query = select(OutgoingMail).where(OutgoingMail.status == "queued").order_by(OutgoingMail.id)
    if to:
        query = query.where(OutgoingMail.to == to)
    return list(db.session.scalars(query))


def raw_token(mail: OutgoingMail) -> str:
    return mail.context["confirm_url"].rsplit("/", 1)[1]


def choices(subscriber):
    return {topic.key: on for topic, on in subscriptions.choices_of(db.session, subscriber)}


def subscribed(email="ana@example.com", keys=("subprocessors",), now=None):
    now = now or now_utc()
    outcome = subscriptions.subscribe(db.session, email=email, topic_keys=list(keys), now=now)
    db.session.commit()
    return outcome


def test_subscribe_queues_a_confirmation_and_stores_only_the_token_hash(topics):
    now = now_utc()
    assert subscribed(" Ana@Example.COM ", now=now) == "confirmation"
    subscriber = db.session.scalar(select(Subscriber))
    assert (subscriber.email, subscriber.status, subscriber.source) == ("ana@example.com", "pending", "form")
    [mail] = mails()
    assert mail.template == "confirm_subscription" and mail.to == "ana@example.com"
    raw = raw_token(mail)
    token = db.session.scalar(select(ConfirmationToken))
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest() != raw
    assert token.expires_at == now + timedelta(hours=72)
    assert mail.context["confirm_url"].startswith("http://localhost/subscriptions/confirm/")
    assert mail.context["topics"] == ["Administrative", "Sub-processors"]


def test_confirmation_applies_the_choices_once(topics):
    now = now_utc()
    subscribed(keys=["non-material"], now=now)
    raw = raw_token(mails()[0])
    assert subscriptions.check_confirmation(db.session, raw, now).state == "valid"
    assert db.session.scalar(select(Subscriber)).status == "pending"  # checking changes nothing
    assert subscriptions.confirm(db.session, raw, now + timedelta(hours=1)).state == "valid"
    db.session.commit()
    subscriber = db.session.scalar(select(Subscriber))
    assert subscriber.status == "confirmed" and subscriber.confirmed_at == now + timedelta(hours=1)
    assert choices(subscriber) == {"administrative": True, "subprocessors": False, "documents": False,
                                   "non-material": True}
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 4
    assert subscriptions.confirm(db.session, raw, now + timedelta(hours=2)).state == "used"


@pytest.mark.parametrize(("hours", "state"), [(71.9, "valid"), (72, "expired"), (500, "expired")])
def test_confirmation_links_expire_after_72_hours(topics, hours, state):
    now = now_utc()
    subscribed(now=now)
    raw = raw_token(mails()[0])
    assert subscriptions.confirm(db.session, raw, now + timedelta(hours=hours)).state == state
    db.session.commit()
    expected = "confirmed" if state == "valid" else "pending"
    assert db.session.scalar(select(Subscriber.status)) == expected


@pytest.mark.parametrize("raw", ["", "x", "a" * 500, "\x00", "ü" * 40])
def test_unknown_confirmation_tokens(topics, raw):
    assert subscriptions.confirm(db.session, raw).state == "unknown"


def test_at_most_three_emails_per_address_per_day(topics):
    now = datetime(2026, 12, 1, 23, 50, tzinfo=UTC)
    outcomes = [subscribed(now=now + timedelta(minutes=i)) for i in range(5)]
    assert outcomes == ["confirmation"] * 3 + ["limited"] * 2
    assert len(mails("ana@example.com")) == 3
    live = select(func.count()).select_from(ConfirmationToken).where(ConfirmationToken.used_at.is_(None))
    assert db.session.scalar(live) == 3
    dropped = db.session.scalars(select(OutgoingMail).where(OutgoingMail.status == "dropped")).all()
    assert [(m.to, m.context, "more than 3 requests" in m.error) for m in dropped] == [
        ("ana@example.com", {}, True)] * 2
    assert subscribed("other@example.com", now=now) == "confirmation"  # the limit is per address
    assert subscribed(now=now + timedelta(minutes=10)) == "confirmation"  # a new (UTC) day
    # One row per address and day, keyed by a keyed hash of the address, not the address.
    ana, other = (subscriptions.address_hash(a) for a in ("ana@example.com", "other@example.com"))
    assert len(ana) == 64 and ana != hashlib.sha256(b"ana@example.com").hexdigest()
    quotas = {(q.address_hash, q.day, q.count) for q in db.session.scalars(select(MailQuota))}
    assert quotas == {(ana, date(2026, 12, 1), 5), (other, date(2026, 12, 1), 1), (ana, date(2026, 12, 2), 1)}


def test_an_active_subscriber_gets_their_preferences_link_and_nothing_changes(topics):
    now = now_utc()
    subscribed(keys=["documents"], now=now)
    subscriptions.confirm(db.session, raw_token(mails()[0]), now)
    db.session.commit()
    subscriber = db.session.scalar(select(Subscriber))
    before = choices(subscriber)
    assert subscribed(keys=["non-material"], now=now) == "already_active"
    mail = mails()[-1]
    assert mail.template == "subscription_already_active"
    expected = subscriptions.preferences_url(subscriber.id, subscriber.generation)
    assert mail.context["preferences_url"] == expected
    assert choices(subscriber) == before
    # The request leaves a token row like every other (same work on every path), born used.
    tokens = db.session.scalars(select(ConfirmationToken).order_by(ConfirmationToken.id)).all()
    assert [t.used_at is None for t in tokens] == [False, False]


def test_confirming_retires_the_other_links(topics):
    now = now_utc()
    subscribed(keys=["documents"], now=now)
    subscribed(keys=["non-material"], now=now)
    first, second = (raw_token(m) for m in mails())
    assert subscriptions.confirm(db.session, second, now).state == "valid"
    assert subscriptions.confirm(db.session, first, now).state == "used"
    assert choices(db.session.scalar(select(Subscriber)))["non-material"] is True


@pytest.mark.parametrize("email", ["", "   ", "no-at-sign", "a@b", "a@@b.com", "a b@c.com", "a@b..com",
                                   "x@-bad.com", "a\x00@b.com", "a@b.com\nb@c.com", "<a@b.com>",
                                   "a" * 65 + "@b.com", "a@" + "b" * 260 + ".com"])
def test_invalid_addresses_are_refused_with_a_message(topics, email):
    with pytest.raises(SubscriptionError) as error:
        subscriptions.subscribe(db.session, email=email, topic_keys=[])
    assert error.value.field == "email" and error.value.message
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_unknown_topics_are_refused(topics):
    with pytest.raises(SubscriptionError) as error:
        subscriptions.subscribe(db.session, email="a@b.com", topic_keys=["nope"])
    assert error.value.field == "topics"


def test_a_topic_added_after_the_form_gets_the_rule_on_confirmation(topics):
    now = now_utc()
    subscribed("none@example.com", keys=[], now=now)
    subscribed("some@example.com", keys=["documents"], now=now)
    subscriptions.add_topic(db.session, "security", "Security advisories", "", True, now=now)
    for mail in mails():
        subscriptions.confirm(db.session, raw_token(mail), now)
    by_email = {s.email: s for s in db.session.scalars(select(Subscriber))}
    assert choices(by_email["none@example.com"])["security"] is False
    assert choices(by_email["some@example.com"])["security"] is True


def confirmed(email, keys, now=None):
    now = now or now_utc()
    subscriptions.subscribe(db.session, email=email, topic_keys=keys, now=now)
    subscriptions.confirm(db.session, raw_token(mails(email)[-1]), now)
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def test_add_topic_applies_the_new_topic_rule_to_every_subscriber(topics):
    nothing = confirmed("nothing@example.com", [])
    some = confirmed("some@example.com", ["non-material"])
    no_rows = Subscriber(email="legacy@example.com", status="confirmed")
    db.session.add(no_rows)
    db.session.flush()
    for default_on in (True, False):
        topic = subscriptions.add_topic(db.session, f"new-{default_on}".lower(), "New", "", default_on)
        rows = dict(db.session.execute(select(Subscription.subscriber_id, Subscription.is_subscribed)
                                       .where(Subscription.topic_id == topic.id)).all())
        assert rows == {nothing.id: False, some.id: default_on, no_rows.id: default_on}


def test_add_topic_validates(topics, app):
    with pytest.raises(SubscriptionError, match="already exists"):
        subscriptions.add_topic(db.session, "documents", "Again", "", True)
    with pytest.raises(SubscriptionError, match="no document"):
        subscriptions.add_topic(db.session, "document:missing", "Missing", "", True)
    with pytest.raises(SubscriptionError) as error:
        subscriptions.add_topic(db.session, "fine", "\x00 \t", "", True)
    assert error.value.field == "name"
    for field, name, description in (("name", "Security\u202e", ""), ("description", "Security", "a\u200bb")):
        with pytest.raises(SubscriptionError) as error:
            subscriptions.add_topic(db.session, "fine", name, description, True)
        assert error.value.field == field and "U+" in error.value.message


def test_preferences_update_keeps_administrative_on(topics):
    subscriber = confirmed("ana@example.com", ["documents"])
    subscriptions.update_topics(db.session, subscriber, ["non-material"])
    assert choices(subscriber) == {"administrative": True, "subprocessors": False, "documents": False,
                                   "non-material": True}
    with pytest.raises(SubscriptionError):
        subscriptions.update_topics(db.session, subscriber, ["made-up"])


def test_one_click_unchecks_the_topic_and_administrative_ends_the_subscription(topics):
    subscriber = confirmed("ana@example.com", ["documents", "subprocessors"])
    for _ in range(2):  # idempotent
        subscriptions.one_click_unsubscribe(db.session, subscriber, topics["documents"])
        assert choices(subscriber)["documents"] is False and subscriber.status == "confirmed"
    assert choices(subscriber)["subprocessors"] is True
    generation = subscriber.generation
    subscriptions.one_click_unsubscribe(db.session, subscriber, topics["administrative"])
    assert subscriber.status == "deleted" and subscriber.deleted_at is not None
    assert subscriber.generation == generation + 1  # every link mailed so far is now stale
    deleted_at = subscriber.deleted_at
    subscriptions.one_click_unsubscribe(db.session, subscriber, topics["administrative"])
    assert (subscriber.deleted_at, subscriber.generation) == (deleted_at, generation + 1)


def test_a_deleted_subscriber_can_subscribe_again(topics):
    subscriber = confirmed("ana@example.com", [])
    subscriptions.delete_subscription(db.session, subscriber)
    assert subscribed("ana@example.com", keys=["documents"]) == "confirmation"
    subscriptions.confirm(db.session, raw_token(mails()[-1]))
    again = db.session.scalar(select(Subscriber).where(Subscriber.email == "ana@example.com"))
    # The deleted subscription was erased; the new one is a subscriber of its own.
    assert again.id != subscriber.id and again.status == "confirmed" and again.deleted_at is None
    assert subscriber.status == "deleted" and subscriber.email.startswith("erased:")


def test_signed_links_round_trip_and_resist_tampering(app):
    issued = date(2026, 5, 1)
    prefs = subscriptions.preferences_token(42, 3, issued=issued)
    unsub = subscriptions.unsubscribe_token(42, 7, 3, issued=issued)
    assert subscriptions.read_preferences_token(prefs) == subscriptions.Link(42, None, 3, issued)
    assert subscriptions.read_unsubscribe_token(unsub) == subscriptions.Link(42, 7, 3, issued)
    # one purpose's token is no good for the other
    assert subscriptions.read_unsubscribe_token(prefs) is None
    assert subscriptions.read_preferences_token(unsub) is None
    tampered = prefs[:-2] + ("AA" if prefs[-2:] != "AA" else "BB")
    assert subscriptions.read_preferences_token(tampered) is None
    assert subscriptions.read_unsubscribe_token(subscriptions.unsubscribe_token(42, 8, 1)).topic_id == 8
    for garbage in ["", "x", "!" * 40, "a" * 1000, "é" * 30, prefs + "A", None]:
        assert subscriptions.read_preferences_token(garbage) is None
        assert subscriptions.read_unsubscribe_token(garbage) is None


def test_links_mailed_before_they_carried_a_generation_still_work(app):
    """The previous format (ids only, same keys) reads as generation 1, made on the release day."""
    old_prefs = subscriptions.sign_token(b"preferences", struct.pack(">Q", 42))
    old_unsub = subscriptions.sign_token(b"unsubscribe", struct.pack(">QQ", 42, 7))
    legacy = subscriptions.LEGACY_ISSUED
    assert subscriptions.read_preferences_token(old_prefs) == subscriptions.Link(42, None, 1, legacy)
    assert subscriptions.read_unsubscribe_token(old_unsub) == subscriptions.Link(42, 7, 1, legacy)


@pytest.mark.parametrize(("days", "state"), [(0, "valid"), (400, "valid"), (401, "expired")])
def test_links_expire_after_400_days(topics, days, state):
    subscriber = confirmed("ana@example.com", [])
    issued = date(2026, 1, 10)
    link = subscriptions.read_preferences_token(
        subscriptions.preferences_token(subscriber.id, subscriber.generation, issued=issued))
    now = datetime(2026, 1, 10, 23, 59, tzinfo=UTC) + timedelta(days=days)
    assert subscriptions.check_link(db.session, link, now).state == state


def test_deleting_makes_old_links_stale(topics):
    subscriber = confirmed("ana@example.com", [])
    first = subscriptions.read_preferences_token(
        subscriptions.preferences_token(subscriber.id, subscriber.generation))
    assert subscriptions.check_link(db.session, first).state == "valid"
    subscriptions.delete_subscription(db.session, subscriber)
    check = subscriptions.check_link(db.session, first)
    assert (check.state, check.subscriber.status) == ("stale", "deleted")
    nobody = subscriptions.Link(999, None, 1, date.today())
    assert subscriptions.check_link(db.session, nobody).state == "unknown"
    assert subscriptions.check_link(db.session, None).state == "unknown"


def test_a_subscription_deleted_before_erasure_existed_gets_a_new_generation_when_confirmed_again(topics):
    """Deleted before this release: the row kept its address (the migration moved it to generation 2;
    the first purge erases it). Subscribing again reuses the row, and confirming moves the generation."""
    legacy = Subscriber(email="ana@example.com", status="deleted", generation=2, deleted_at=now_utc())
    db.session.add(legacy)
    db.session.commit()
    mailed_after_deletion = subscriptions.Link(legacy.id, None, 2, date.today())
    subscribed("ana@example.com", keys=[])
    subscriptions.confirm(db.session, raw_token(mails()[-1]))
    assert (legacy.status, legacy.generation) == ("confirmed", 3)
    check = subscriptions.check_link(db.session, mailed_after_deletion)
    assert (check.state, check.subscriber.status) == ("stale", "confirmed")


def test_signed_links_depend_on_the_secret_key(app):
    token = subscriptions.preferences_token(42, 1)
    app.config["SECRET_KEY"] = "another-secret-" + "y" * 40
    try:
        assert subscriptions.read_preferences_token(token) is None
    finally:
        app.config["SECRET_KEY"] = app.config["REGISTRY"].secret_key


def test_link_urls_are_absolute_and_opaque(app):
    db.session.add(Subscriber(id=5, email="secret.person@example.com", status="confirmed"))
    db.session.flush()
    prefs, unsub = subscriptions.preferences_url(5, 1), subscriptions.unsubscribe_url(5, 2, 1)
    assert urlsplit(prefs).path.startswith(subscriptions.PREFERENCES_PATH)
    assert urlsplit(unsub).path.startswith(subscriptions.UNSUBSCRIBE_PATH)
    assert prefs.startswith("http://localhost/") and unsub.startswith("http://localhost/")
    for url in (prefs, unsub):
        assert "secret" not in url and "example" not in url
    # One per recipient, built by the worker without a query (their speed is bench/dispatch_bench.py's):
    # distinct per subscriber and per topic.
    today = date.today()
    tokens = {subscriptions.unsubscribe_token(subscriber_id, topic, 1, issued=today)
              for subscriber_id in range(1000) for topic in (3, 4)}
    assert len(tokens) == 2000


def test_history_lists_the_notices_sent_to_the_address(topics):
    subscriber = confirmed("ana@example.com", [])
    change_set = ChangeSet(title="New sub-processor", status="in_notice", published_at=now_utc())
    db.session.add(change_set)
    db.session.flush()
    notice = Notice(change_set_id=change_set.id, subject="Notice: new sub-processor")
    db.session.add(notice)
    db.session.flush()
    sent_at = now_utc()
    db.session.add_all([
        Delivery(notice_id=notice.id, subscriber_id=subscriber.id, email=subscriber.email, status="sent",
                 sent_at=sent_at, last_event="delivered"),
        Delivery(notice_id=notice.id, email="someone.else@example.com", status="sent"),
    ])
    db.session.flush()
    [item] = subscriptions.history(db.session, subscriber)
    assert (item.subject, item.status, item.sent_at, item.last_event) == (
        "Notice: new sub-processor", "sent", sent_at, "delivered")


def test_generations_are_read_for_a_batch_in_chunks(app):
    db.session.execute(insert(Subscriber), [{"id": i, "email": f"r{i}@example.com", "status": "confirmed",
                                             "generation": i % 3 + 1} for i in range(1, 1501)])
    found = subscriptions.generations(db.session, [*range(1, 1501), 99_999, 7])
    assert found == {i: i % 3 + 1 for i in range(1, 1501)}  # the unknown id is simply absent


def test_two_confirmations_of_one_link_at_once_apply_it_once(app, topics):
    import threading

    subscribed(keys=["documents"])
    raw = raw_token(mails()[0])
    start, states, errors = threading.Barrier(2), [], []

    def click():
        with app.app_context():
            try:
                start.wait(timeout=30)
                states.append(subscriptions.confirm(db.session, raw).state)
                db.session.commit()
            except BaseException as error:  # reported in the test's thread
                errors.append(error)
                db.session.rollback()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(states) == ["used", "valid"]
    db.session.expire_all()
    subscriber = db.session.scalar(select(Subscriber))
    assert (subscriber.status, subscriber.generation) == ("confirmed", 1)
