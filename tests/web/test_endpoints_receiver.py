"""The development receiver the demo's working endpoint points at: only in development with loopback
allowed, and it answers 204 only to a request signed with that endpoint's secret."""

import json
import time

import pytest
from sqlalchemy import select

from registry import create_app
from registry.domain import signing
from registry.extensions import db
from registry.models import Endpoint, Subscriber
from registry.services import endpoints
from registry.settings import Settings, SettingsError
from tests import factories
from tests.conftest import fresh_app, make_settings


def test_not_served_outside_development(client):
    assert client.post("/subscriptions/dev-receiver", data="{}").status_code in (404, 405)


@pytest.fixture
def development(databases, tmp_path):
    app = fresh_app(databases.new(), tmp_path, env="development", endpoints_allow_private=True,
                    base_url="http://127.0.0.1")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_the_receiver_verifies_signatures(development):
    factories.subscription_topics()
    subscriber = Subscriber(email="dev@customer.example", status="confirmed")
    db.session.add(subscriber)
    db.session.flush()
    url = "http://127.0.0.1/subscriptions/dev-receiver"
    endpoint, secret = endpoints.create(db.session, endpoints.Owner(subscriber=subscriber), url=url,
                                        topic_keys=["documents"], actor="test")
    db.session.commit()
    client = development.test_client()
    body = json.dumps({"type": "ping", "timestamp": "now", "data": {}}).encode()
    now = int(time.time())
    signed = signing.headers([secret], "msg_1", now, body)
    assert client.post(url, data=body, headers=signed).status_code == 204
    forged = signing.headers([signing.new_secret()], "msg_1", now, body)
    assert client.post(url, data=body, headers=forged).status_code == 401
    assert client.post(url, data=b"not json", headers=signed).status_code == 400
    assert client.post(url, data=body, headers={"webhook-timestamp": "x"}).status_code == 400
    assert db.session.scalar(select(Endpoint.id)) == endpoint.id


def test_production_refuses_private_endpoints(tmp_path):
    with pytest.raises(SettingsError, match="REGISTRY_ENDPOINTS_ALLOW_PRIVATE"):
        Settings.from_env({"REGISTRY_ENV": "production", "REGISTRY_ENDPOINTS_ALLOW_PRIVATE": "1",
                           "REGISTRY_INSTANCE_PATH": str(tmp_path)})
    assert not Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)}).endpoints_allow_private
    settings = create_app(make_settings("sqlite://", tmp_path)).config["REGISTRY"]
    assert settings.endpoints_allow_private is False
