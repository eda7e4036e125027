"""Garbage into every public form and endpoint of subscribing and the feeds: never a 500, nothing stored."""

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registry.extensions import db, limiter
from registry.models import OutgoingMail, Subscriber, Subscription, Topic
from registry.services import subscriptions
from registry.services.subscriptions import SubscriptionError
from tests.conftest import csrf_token

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
garbage = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50),
    st.sampled_from(["\x00", "a@b.com\x00", "' OR 1=1 --", "<script>alert(1)</script>@x.com", "ä@ö.de",
                     "a" * 5000, "%00", "../../etc/passwd", "\ud7ff@x.co", "null", "[]", "{}"]),
)
path_segment = st.one_of(garbage, st.binary(max_size=60).map(lambda b: b.decode("latin-1")))


@pytest.fixture
def topics(app):
    db.session.add_all([Topic(key="administrative", name="Administrative", is_administrative=True),
                        Topic(key="documents", name="Documents")])
    db.session.commit()


def stored() -> tuple[int, int, int]:
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Subscriber, Subscription, OutgoingMail))


def is_valid(email: str, topic_keys: list[str]) -> bool:
    try:
        subscriptions.normalise_email(email)
    except SubscriptionError:
        return False
    return all(key in ("administrative", "documents") for key in topic_keys)


@SETTINGS
@given(email=garbage, topic_keys=st.lists(garbage, max_size=4))
def test_subscribe_form(client, topics, email, topic_keys):
    limiter.reset()
    before = stored()
    response = client.post("/subscriptions/", data={"csrf_token": csrf_token(client), "email": email,
                                                    "topics": topic_keys})
    assert response.status_code < 500
    if is_valid(email, topic_keys):
        assert response.status_code == 200
    else:
        assert response.status_code in (400, 413, 422)
        assert stored() == before


@SETTINGS
@given(fields=st.dictionaries(garbage, garbage, max_size=5))
def test_subscribe_form_with_arbitrary_fields(client, topics, fields):
    limiter.reset()
    before = stored()
    fields.pop("email", None)
    response = client.post("/subscriptions/", data={"csrf_token": csrf_token(client), **fields})
    assert response.status_code in (400, 413, 422)
    assert stored() == before


@SETTINGS
@given(token=path_segment, topic_keys=st.lists(garbage, max_size=3))
def test_token_links(app, client, topics, token, topic_keys):
    before = stored()
    segment = quote(token.encode("utf-8", "surrogatepass"), safe="")
    mail_client = app.test_client(use_cookies=False)
    responses = [
        client.get(f"/subscriptions/confirm/{segment}"),
        client.post(f"/subscriptions/confirm/{segment}", data={"csrf_token": csrf_token(client)}),
        client.get(f"/subscriptions/preferences/{segment}"),
        client.post(f"/subscriptions/preferences/{segment}",
                    data={"csrf_token": csrf_token(client), "topics": topic_keys}),
        client.post(f"/subscriptions/preferences/{segment}/delete", data={"csrf_token": csrf_token(client)}),
        client.get(f"/subscriptions/unsubscribe/{segment}"),
        mail_client.post(f"/subscriptions/unsubscribe/{segment}", data=token.encode("utf-8", "replace")),
    ]
    for response in responses:
        assert response.status_code in (404, 405, 308, 410), response.status_code
    assert stored() == before


@SETTINGS
@given(topic_keys=st.lists(garbage, min_size=1, max_size=4))
def test_preferences_form_with_garbage_topics(client, topics, topic_keys):
    if all(key in ("administrative", "documents") for key in topic_keys):
        return
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == "ana@example.com"))
    if subscriber is None:
        subscriber = Subscriber(email="ana@example.com", status="confirmed")
        db.session.add(subscriber)
        db.session.commit()
    before = stored()
    token = subscriptions.preferences_token(subscriber.id, subscriber.generation)
    url = f"/subscriptions/preferences/{token}"
    response = client.post(url, data={"csrf_token": csrf_token(client), "topics": topic_keys})
    assert response.status_code == 422
    assert stored() == before


@SETTINGS
@given(name=path_segment, query=st.dictionaries(garbage, garbage, max_size=3))
def test_feed_paths(client, topics, name, query):
    segment = quote(name.encode("utf-8", "surrogatepass"), safe="")
    for path in (f"/feeds/{segment}", f"/feeds/documents/{segment}.atom", f"/feeds/{segment}.rss"):
        response = client.get(path, query_string=query)
        assert response.status_code < 500
    assert client.get("/feeds/all.atom", query_string=query).status_code == 200


def test_form_bodies_that_are_not_forms(client, topics):
    for body, content_type in [(b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
                               (b"{\"email\": \"a@b.com\"}", "application/json"),
                               (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
                               (b"email=" + b"a" * 600_000, "application/x-www-form-urlencoded")]:
        response = client.post("/subscriptions/", data=body, content_type=content_type)
        assert response.status_code in (400, 413, 422)
    assert stored() == (0, 0, 0)
