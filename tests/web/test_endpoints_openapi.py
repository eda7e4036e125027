"""The webhook payloads customers receive match the schemas of the OpenAPI document's `webhooks`."""

from jsonschema import Draft202012Validator

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import endpoints
from registry.web import openapi
from tests import factories


def test_every_event_is_described_and_change_payloads_validate(app, client):
    described = client.get("/api/v1/openapi.json").json
    assert set(described["webhooks"]) == set(endpoints.EVENT_TYPES)
    change_set = factories.announced_change(now_utc())
    for event_type in endpoints.CHANGE_EVENTS:
        event = endpoints.change_event(db.session, change_set, event_type, now=now_utc())
        name = openapi.WEBHOOK_EVENTS[event_type][0]
        Draft202012Validator(described["components"]["schemas"][name]).validate(event.payload)
    db.session.rollback()
