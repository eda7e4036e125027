"""Issue 8 §6: deletion erases at once all but a keyed hash; the purge removes closed subscriptions later."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    AuditEntry,
    ChangeSet,
    ConfirmationToken,
    Delivery,
    MailQuota,
    Notice,
    OutgoingMail,
    Subscriber,
    Subscription,
)
from registry.services import contacts, retention, subscriptions
from tests.factories import subscription_topics

NOW = now_utc()


@pytest.fixture
def topics(app):
    return subscription_topics()


def new_notice() -> Notice:
    change_set = ChangeSet(title="New sub-processor", status="in_notice", published_at=NOW)
    db.session.add(change_set)
    db.session.flush()
    row = Notice(change_set_id=change_set.id, subject="Notice: new sub-processor")
    db.session.add(row)
    db.session.flush()
    return row


def imported(email: str) -> Subscriber:
    contacts.import_contacts(db.session, f"email,name,company\n{email},Ana Silva,Customer Ltd\n".encode())
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def deliver(subscriber, status="sent") -> Delivery:
    """A delivery of a notice of its own (deliveries are unique per notice and address)."""
    delivery = Delivery(notice_id=new_notice().id, subscriber_id=subscriber.id, email=subscriber.email,
                        status=status, sent_at=NOW if status == "sent" else None)
    db.session.add(delivery)
    db.session.flush()
    return delivery


def rows_mentioning(address: str) -> list[str]:
    """Every stored value, in the tables a subscription touches, that contains the address."""
    found = []
    for model in (Subscriber, Delivery, OutgoingMail, ConfirmationToken, AuditEntry):
        for row in db.session.scalars(select(model)):
            values = {c.key: getattr(row, c.key) for c in model.__table__.columns}
            if address in json.dumps(values, default=str):
                found.append(f"{model.__tablename__} {values.get('id')}")
    return found


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_deleting_erases_all_but_a_keyed_hash_and_the_address_can_still_be_looked_up(topics):
    ana = imported("ana@example.com")
    sent = deliver(ana, "sent")
    in_flight = deliver(ana, "sending")
    subscriptions.subscribe(db.session, email="ana@example.com", topic_keys=[])  # an "already active" mail
    db.session.add(ConfirmationToken(subscriber_id=ana.id, token_hash="x" * 64, expires_at=NOW))
    db.session.commit()

    subscriptions.one_click_unsubscribe(db.session, ana, topics["administrative"])
    db.session.commit()
    db.session.expire_all()

    hashed = retention.erased_address("ana@example.com")
    assert hashed.startswith("erased:") and len(hashed) == 71
    assert (ana.status, ana.email, ana.name, ana.company) == ("deleted", f"{hashed}:{ana.id}", "", "")
    assert count(Subscription) == 0 and count(ConfirmationToken) == 0
    assert db.session.get(Delivery, sent.id).email == f"{hashed}:{ana.id}"
    mail = db.session.scalar(select(OutgoingMail))
    assert (mail.to, mail.context, mail.status) == (hashed, {}, "dropped")
    # Only the delivery the worker is sending right now still names the address (purge hashes it later).
    assert rows_mentioning("ana@example.com") == [f"deliveries {in_flight.id}"]
    # Staff type the address (any case): both notices are found, the erased one through its hash.
    assert len(subscriptions.notices_to_address(db.session, " ANA@example.com ")) == 2
    assert subscriptions.notices_to_address(db.session, "bob@example.com") == []
    assert retention.erased_address("bob@example.com") != hashed


def test_the_hash_depends_on_the_secret_key(app):
    before = retention.erased_address("ana@example.com")
    app.config["SECRET_KEY"] = "another-secret-" + "y" * 40
    try:
        assert retention.erased_address("ana@example.com") != before
    finally:
        app.config["SECRET_KEY"] = app.config["REGISTRY"].secret_key


def test_a_notice_still_queued_for_a_deleted_subscription_is_not_sent(topics):
    ana = imported("ana@example.com")
    queued = deliver(ana, "queued")
    notice_id = queued.notice_id
    db.session.commit()
    subscriptions.delete_subscription(db.session, ana)
    db.session.commit()
    db.session.expire_all()
    delivery = db.session.get(Delivery, queued.id)
    assert (delivery.status, delivery.error) == ("failed", "not sent: the subscription was deleted")
    assert delivery.email.startswith("erased:")
    assert rows_mentioning("ana@example.com") == []
    # That was its only delivery: the notice is settled, not left waiting for a mail never to be sent.
    assert db.session.get(Notice, notice_id).dispatch_completed_at is not None


def test_a_dedicated_erasure_key_survives_a_new_secret_key(app, monkeypatch):
    derived = retention.erased_address("ana@example.com")
    settings = app.config["REGISTRY"]
    monkeypatch.setitem(app.config, "REGISTRY", settings.with_overrides(erasure_key="e" * 40))
    dedicated = retention.erased_address("ana@example.com")
    assert dedicated != derived
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret-" + "y" * 40)
    assert retention.erased_address("ana@example.com") == dedicated


def test_the_same_address_subscribing_and_deleting_twice_keeps_both_proofs(topics):
    """Deliveries are unique per notice and address: the hashes carry the subscriber id to stay so."""
    first = imported("ana@example.com")
    notice = new_notice()
    db.session.add(Delivery(notice_id=notice.id, subscriber_id=first.id, email=first.email, status="sent"))
    subscriptions.delete_subscription(db.session, first)
    second = imported("ana@example.com")
    db.session.add(Delivery(notice_id=notice.id, subscriber_id=second.id, email=second.email, status="sent"))
    subscriptions.delete_subscription(db.session, second)
    db.session.commit()
    assert len(subscriptions.notices_to_address(db.session, "ana@example.com")) == 2


def test_purge_removes_closed_subscriptions_after_the_period_and_audits_counts_only(topics, tmp_path):
    old, recent = imported("old@example.com"), imported("recent@example.com")
    active = imported("on@example.com")
    old_delivery, in_flight = deliver(old).id, deliver(recent, "sending")
    deliver(recent)
    kept_delivery = deliver(active).id
    recent_id, active_id = recent.id, active.id
    subscriptions.delete_subscription(db.session, old, NOW - timedelta(days=400))
    subscriptions.delete_subscription(db.session, recent, NOW - timedelta(days=30))
    never_confirmed = Subscriber(email="never@example.com", status="pending",
                                 created_at=NOW - timedelta(days=366))
    legacy = Subscriber(email="legacy@example.com", status="deleted", deleted_at=NOW - timedelta(days=500))
    db.session.add_all([never_confirmed, legacy])
    db.session.add(MailQuota(address_hash="h" * 64, day=(NOW - timedelta(days=3)).date(), count=1))
    db.session.add(MailQuota(address_hash="h" * 64, day=NOW.date(), count=1))
    in_flight.status = "sent"  # it settled after the deletion
    in_flight = in_flight.id
    db.session.commit()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for name, to in [("1.eml", "Old <old@example.com>"), ("2.eml", "never@example.com"),
                     ("3.eml", "recent@example.com"), ("4.eml", "on@example.com")]:
        (outbox / name).write_bytes(f"To: {to}\nSubject: Notice\n\nBody\n".encode())

    report = retention.purge(db.session, now=NOW, outbox=outbox)
    db.session.commit()

    expected = {"subscribers_erased": 1, "addresses_hashed": 1, "subscribers": 3, "deliveries": 1, "mails": 0,
                "tokens": 0, "choices": 0, "quotas": 1, "outbox_files": 2}
    assert report == retention.PurgeReport(**expected)
    remaining = set(db.session.scalars(select(Subscriber.id)))
    assert remaining == {recent_id, active_id}
    assert db.session.get(Delivery, old_delivery) is None and db.session.get(Delivery, kept_delivery)
    erased_as = f"{retention.erased_address('recent@example.com')}:{recent_id}"
    assert db.session.get(Delivery, in_flight).email == erased_as
    assert sorted(p.name for p in outbox.iterdir()) == ["3.eml", "4.eml"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "subscribers.purge"))
    assert entry.after["subscribers"] == 3 and entry.after["retention_days"] == 365
    for address in ("old@", "never@", "legacy@", "recent@"):
        assert address not in json.dumps(entry.after)
    assert rows_mentioning("recent@example.com") == [] and rows_mentioning("old@example.com") == []

    again = retention.purge(db.session, now=NOW, outbox=outbox)
    assert (again.subscribers, again.deliveries, again.outbox_files) == (0, 0, 0)


def test_the_cli_runs_the_purge_with_a_period(app, runner, topics):
    db.session.add(Subscriber(email="gone@example.com", status="deleted",
                              deleted_at=NOW - timedelta(days=40)))
    db.session.commit()
    result = runner.invoke(args=["subscribers", "purge", "--older-than-days", "30"])
    assert result.exit_code == 0, result.output
    assert "subscribers erased: 1" in result.output and "subscribers: 1" in result.output
    assert count(Subscriber) == 0
    assert runner.invoke(args=["subscribers", "purge", "--older-than-days", "0"]).exit_code == 2


def test_the_long_running_worker_purges_when_it_starts_and_daily(app, topics, monkeypatch):
    from registry.cli import notices as worker_cli

    db.session.add(Subscriber(email="gone@example.com", status="deleted",
                              deleted_at=NOW - timedelta(days=400)))
    db.session.commit()

    class IdleWorker:
        worker = "idle-host:1"  # the name its heartbeat is recorded under

        def cycle(self):
            return 0

        def survive(self, step, failures):
            return True, step()

    clock = [1000.0]  # each idle sleep lets 13 hours pass: purges at 0 h and 26 h, none at 13 h

    def sleep(_seconds):
        clock[0] += 13 * 3600

    monkeypatch.setattr(worker_cli.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(worker_cli.time, "sleep", sleep)
    monkeypatch.setattr(worker_cli.dispatch, "tick_workflow", lambda *_args: None)
    turns = iter([False, False, False, True])
    worker_cli._loop(IdleWorker(), 1.0, should_stop=lambda: next(turns))
    purges = db.session.scalars(select(AuditEntry.after).where(AuditEntry.action == "subscribers.purge")
                                .order_by(AuditEntry.id)).all()
    assert [p["subscribers"] for p in purges] == [1, 0]  # at start, then once a day has passed
    assert count(Subscriber) == 0
