"""The customer's endpoint pages (under the preferences link) and the staff's, with garbage."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import Endpoint, EndpointDelivery, Subscriber
from registry.services import subscriptions
from tests import factories
from tests.conftest import csrf_token


@pytest.fixture
def subscriber(app):
    factories.subscription_topics()
    row = Subscriber(email="risk@customer.example", status="confirmed")
    db.session.add(row)
    db.session.commit()
    return row


def base(subscriber) -> str:
    token = subscriptions.preferences_token(subscriber.id, subscriber.generation)
    return f"/subscriptions/preferences/{token}/endpoints/"


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def test_add_an_endpoint_see_its_secret_once_and_its_test_event(client, subscriber):
    page = client.get(base(subscriber))
    assert page.status_code == 200 and b"Add endpoint" in page.data
    created = post(client, base(subscriber), url="https://hooks.customer.example/registry",
                   topics=["documents"])
    assert created.status_code == 201
    secret = re.search(rb"whsec_[A-Za-z0-9+/=]+", created.data).group().decode()
    endpoint = db.session.scalar(select(Endpoint))
    assert endpoint.secret == secret and endpoint.topic_keys == ["documents"]
    listed = client.get(base(subscriber)).get_data(as_text=True)
    row = re.search(r"<tr>\s*<td><a [^>]*>https://hooks.customer.example/registry</a>.*?</tr>", listed, re.S)
    assert row and "Enabled" in row.group() and "<code>ping</code>: queued" in row.group()
    shown = client.get(f"{base(subscriber)}{endpoint.id}")
    assert shown.status_code == 200 and secret.encode() not in shown.data
    assert b"ping" in shown.data and b"queued" in shown.data
    delivery = db.session.scalar(select(EndpointDelivery))
    status = client.get(f"{base(subscriber)}{endpoint.id}/deliveries/{delivery.id}.json")
    assert status.json["status"] == "queued" and status.json["event"] == "ping"
    resent = post(client, f"{base(subscriber)}{endpoint.id}/deliveries/{delivery.id}/resend")
    assert resent.status_code == 303
    rotated = post(client, f"{base(subscriber)}{endpoint.id}/rotate")
    assert rotated.status_code == 200 and b"whsec_" in rotated.data and secret.encode() not in rotated.data
    assert post(client, f"{base(subscriber)}{endpoint.id}/disable").status_code == 303
    assert b"Disabled since" in client.get(f"{base(subscriber)}{endpoint.id}").data
    assert post(client, f"{base(subscriber)}{endpoint.id}/enable").status_code == 303
    assert client.get(f"{base(subscriber)}{endpoint.id}").headers["Cache-Control"] == "no-store"


GARBAGE = [
    ({"url": "http://hooks.customer.example/", "topics": ["documents"]}, b"https://"),
    ({"url": "https://" + "a" * 3000 + ".example/", "topics": ["documents"]}, b"too long"),
    ({"url": "https://u:p@hooks.customer.example/", "topics": ["documents"]}, b"user name"),
    ({"url": "https://10.0.0.1/", "topics": ["documents"]}, b"private"),
    ({"url": "https://[::ffff:127.0.0.1]/", "topics": ["documents"]}, b"loopback"),
    ({"url": "https://169.254.169.254/latest/", "topics": ["documents"]}, b"metadata"),
    ({"url": "not a url", "topics": ["documents"]}, b"https://"),
    ({"url": "", "topics": ["documents"]}, b"Give the endpoint"),
    ({"url": "https://hooks.customer.example/\x00", "topics": ["documents"]}, b"control character"),
    ({"url": "https://hooks.customer.example/", "topics": ["no-such-topic"]}, b"There is no topic"),
    ({"url": "https://hooks.customer.example/"}, b"Choose at least one topic"),
]


@pytest.mark.parametrize(("data", "message"), GARBAGE)
def test_garbage_is_refused_with_a_message(client, subscriber, data, message):
    response = post(client, base(subscriber), **data)
    assert response.status_code == 422
    assert message in response.data
    assert db.session.scalar(select(Endpoint)) is None


def test_someone_elses_endpoint_is_a_404(client, subscriber):
    post(client, base(subscriber), url="https://hooks.customer.example/", topics=["documents"])
    endpoint = db.session.scalar(select(Endpoint))
    delivery = db.session.scalar(select(EndpointDelivery))
    stranger = Subscriber(email="stranger@elsewhere.example", status="confirmed")
    db.session.add(stranger)
    db.session.commit()
    assert client.get(f"{base(stranger)}{endpoint.id}").status_code == 404
    assert client.get(f"{base(stranger)}{endpoint.id}/deliveries/{delivery.id}.json").status_code == 404
    for action in ("rotate", "disable", "enable", f"deliveries/{delivery.id}/resend"):
        assert post(client, f"{base(stranger)}{endpoint.id}/{action}").status_code == 404
    assert post(client, f"{base(subscriber)}{endpoint.id}/deliveries/999999/resend").status_code == 404
    assert client.get(f"{base(subscriber)}99999999").status_code == 404
    assert client.get("/subscriptions/preferences/garbage/endpoints/").status_code == 404
    assert client.post(f"{base(subscriber)}{endpoint.id}/rotate").status_code == 400  # no CSRF token


def test_staff_add_an_endpoint_for_an_organisation(app, make_user, login):
    factories.subscription_topics()
    organisation = factories.organisation(contacts=("dpo@northwind-bank.example",))
    client = login(make_user("approver"))
    url = f"/admin/organisations/{organisation.id}/endpoints/"
    assert client.get(url).status_code == 200
    created = client.post(url, data={"csrf_token": client.csrf(), "url": "https://hooks.northwind.example/x",
                                     "topics": ["administrative"]})
    assert created.status_code == 201 and b"whsec_" in created.data
    endpoint = db.session.scalar(select(Endpoint))
    assert endpoint.organisation_id == organisation.id
    delivery = db.session.scalar(select(EndpointDelivery))
    resent = client.post(f"{url}{endpoint.id}/deliveries/{delivery.id}/resend",
                         data={"csrf_token": client.csrf()})
    assert resent.status_code == 303
    refused = client.post(url, data={"csrf_token": client.csrf(), "url": "ftp://x", "topics": ["nope"]})
    assert refused.status_code == 422
    assert client.get(f"/admin/organisations/{organisation.id + 1}/endpoints/").status_code == 404
    editor = login(make_user("editor"))
    assert editor.post(url, data={"csrf_token": editor.csrf(), "url": "https://a.example/",
                                  "topics": ["documents"]}).status_code == 403
