"""Issue 9 item 3: ten concurrent subscribe requests for one address must still send exactly 3 mails."""

import threading

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import OutgoingMail, Topic
from registry.services import subscriptions

CONCURRENT = 10


@pytest.fixture
def topics(app):
    db.session.add_all([
        Topic(key="administrative", name="Administrative", is_administrative=True, position=0),
        Topic(key="documents", name="Document updates", position=1),
    ])
    db.session.commit()


def subscribe_concurrently(app, address: str, count: int) -> list[str]:
    """`count` requests, each in its own thread, app context, session and transaction, released at once."""
    start = threading.Barrier(count)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def request():
        with app.app_context():
            try:
                start.wait(timeout=30)
                outcomes.append(subscriptions.subscribe(db.session, email=address, topic_keys=["documents"]))
                db.session.commit()
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
                db.session.rollback()

    threads = [threading.Thread(target=request) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return outcomes


def test_concurrent_requests_for_one_address_send_exactly_three_mails(app, topics):
    outcomes = subscribe_concurrently(app, "race@example.com", CONCURRENT)
    assert sorted(outcomes) == ["confirmation"] * 3 + ["limited"] * (CONCURRENT - 3)
    queued = db.session.scalar(select(func.count()).select_from(OutgoingMail).where(
        OutgoingMail.to == "race@example.com", OutgoingMail.status == "queued"))
    assert queued == subscriptions.MAILS_PER_DAY
    assert db.session.scalar(select(func.count()).select_from(OutgoingMail)) == CONCURRENT


def test_concurrent_requests_for_a_confirmed_address_send_exactly_three_mails(app, topics):
    """The other path: an active subscriber's "already subscribed" mails count against the same limit."""
    subscriptions.subscribe(db.session, email="active@example.com", topic_keys=[])
    raw = db.session.scalar(select(OutgoingMail)).context["confirm_url"].rsplit("/", 1)[1]
    subscriptions.confirm(db.session, raw)
    db.session.commit()
    outcomes = subscribe_concurrently(app, "active@example.com", CONCURRENT)
    assert sorted(outcomes) == ["already_active"] * 2 + ["limited"] * (CONCURRENT - 2)
    templates = db.session.scalars(select(OutgoingMail.template).where(OutgoingMail.status == "queued")
                                   .order_by(OutgoingMail.id)).all()
    assert templates == ["confirm_subscription"] + ["subscription_already_active"] * 2
