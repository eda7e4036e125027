"""Events are written where the transitions happen, in their transaction: a change taking effect,
an objection moving on (to the endpoints of whoever sent it, the subscriber and the organisation)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Endpoint, EndpointDelivery, EndpointEvent, EndpointTopic, Subscriber
from registry.services import objections, publishing
from tests import factories
from tests.services.test_objections import received_objection


def endpoint(*, subscriber_id=None, organisation_id=None, topic="documents") -> Endpoint:
    row = Endpoint(subscriber_id=subscriber_id, organisation_id=organisation_id, url="https://h.example/",
                   secret="whsec_x", disabled_reason="", topics=[EndpointTopic(topic_key=topic)])
    db.session.add(row)
    db.session.commit()
    return row


def delivered_to(event_type: str) -> set[int]:
    return set(db.session.scalars(select(EndpointDelivery.endpoint_id).join(EndpointEvent)
                                  .where(EndpointEvent.type == event_type)))


def test_change_effective_when_the_tick_records_it(app):
    factories.subscription_topics()
    change_set = factories.announced_change(now_utc())
    follower = endpoint(subscriber_id=None, organisation_id=factories.organisation().id)
    publishing.record_effective(db.session, now=change_set.effective_at + timedelta(minutes=1))
    db.session.commit()
    assert delivered_to("change.effective") == {follower.id}  # material: every endpoint


def test_objection_updated_goes_to_the_sender_and_their_organisation_only(app, make_user):
    factories.subscription_topics()
    change_set = factories.announced_change(now_utc())
    organisation = factories.organisation("Northwind", ("northwind.example",))
    sender = Subscriber(email="dpo@northwind.example", status="confirmed")
    stranger = Subscriber(email="someone@elsewhere.example", status="confirmed")
    db.session.add_all([sender, stranger])
    db.session.commit()
    own = endpoint(subscriber_id=sender.id)
    theirs = endpoint(organisation_id=organisation.id)
    endpoint(subscriber_id=stranger.id)
    objection = received_objection(change_set, "dpo@northwind.example")
    objections.move(db.session, objection, to="acknowledged", version=objection.version,
                    actor=make_user("approver"))
    db.session.commit()
    assert delivered_to("objection.updated") == {own.id, theirs.id}
    event = db.session.scalar(select(EndpointEvent).where(EndpointEvent.type == "objection.updated"))
    assert event.payload["data"]["reference"] == objection.reference
    assert event.payload["data"]["status"] == "acknowledged"
