"""The endpoint service: owners going away take their endpoints with them; one disable wins."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Endpoint, EndpointDelivery, OutgoingMail, Subscriber
from registry.services import endpoints, organisations, subscriptions
from registry.services.endpoints import Owner
from tests import factories


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_deleting_an_organisation_or_a_subscription_removes_their_endpoints(app, make_user):
    factories.subscription_topics()
    organisation = factories.organisation()
    subscriber = Subscriber(email="risk@customer.example", status="confirmed")
    db.session.add(subscriber)
    db.session.commit()
    for owner in (Owner(organisation=organisation), Owner(subscriber=subscriber)):
        endpoints.create(db.session, owner, url="https://hooks.customer.example/", topic_keys=["documents"],
                         actor="test")
    db.session.commit()
    organisations.delete(db.session, organisation, actor=make_user("admin"))
    db.session.commit()
    assert count(Endpoint) == 1
    subscriptions.delete_subscription(db.session, subscriber)
    db.session.commit()
    assert count(Endpoint) == 0 and count(EndpointDelivery) == 0


def test_two_disables_at_once_tell_the_owner_once(app):
    factories.subscription_topics()
    subscriber = Subscriber(email="risk@customer.example", status="confirmed")
    db.session.add(subscriber)
    db.session.commit()
    endpoint, _ = endpoints.create(db.session, Owner(subscriber=subscriber), url="https://h.customer.example/",
                                   topic_keys=["documents"], actor="test")
    db.session.commit()
    endpoint_id, results, barrier = endpoint.id, [], threading.Barrier(2)

    def disable():
        with app.app_context():
            barrier.wait()
            try:
                results.append(endpoints.disable(db.session, endpoint_id, reason="failing", actor="test",
                                                 now=now_utc(), tell_owner=True))
                db.session.commit()
            except Exception as error:  # SQLite: the loser may meet the lock instead
                db.session.rollback()
                results.append(type(error).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=disable) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert count(OutgoingMail) == 1
    assert db.session.scalar(select(EndpointDelivery.status)) == "failed"
