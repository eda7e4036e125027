"""Issue 9 item 12: preference and unsubscribe links belong to one subscription and expire after 400 days."""

import struct
from datetime import timedelta

import pytest
from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import OutgoingMail, Subscriber, Subscription, Topic
from registry.services import subscriptions
from registry.web import subscriptions as views
from tests.conftest import csrf_token
from tests.factories import subscription_topics

ONE_CLICK = {"data": "List-Unsubscribe=One-Click", "content_type": "application/x-www-form-urlencoded"}


@pytest.fixture
def topics(app):
    return subscription_topics()


def confirmed(client, email="ana@example.com") -> Subscriber:
    client.post("/subscriptions/", data={"csrf_token": csrf_token(client), "email": email,
                                         "topics": ["documents"]})
    mail = db.session.scalar(select(OutgoingMail).where(
        OutgoingMail.to == email, OutgoingMail.status == "queued",
        OutgoingMail.template == "confirm_subscription",
    ).order_by(OutgoingMail.id.desc()))
    client.post(mail.context["confirm_url"].removeprefix("http://localhost"),
                data={"csrf_token": csrf_token(client)})
    db.session.expire_all()
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def links(subscriber: Subscriber, topic: Topic, **signing) -> tuple[str, str]:
    prefs = subscriptions.preferences_token(subscriber.id, subscriber.generation, **signing)
    unsub = subscriptions.unsubscribe_token(subscriber.id, topic.id, subscriber.generation, **signing)
    return f"/subscriptions/preferences/{prefs}", f"/subscriptions/unsubscribe/{unsub}"


def documents_on(subscriber: Subscriber, topic: Topic) -> bool:
    return db.session.scalar(select(Subscription.is_subscribed).where(
        Subscription.subscriber_id == subscriber.id, Subscription.topic_id == topic.id))


def test_links_of_a_deleted_subscription_do_not_work_after_subscribing_again(app, client, topics):
    subscriber = confirmed(client)
    old_prefs, old_unsub = links(subscriber, topics["documents"])
    client.post(f"{old_prefs}/delete", data={"csrf_token": csrf_token(client)})
    # A mail client repeating its one-click POST after the end hears "done" again, and nothing changes.
    assert app.test_client(use_cookies=False).post(old_unsub, **ONE_CLICK).status_code == 200

    again = confirmed(client)
    assert again.id != subscriber.id and documents_on(again, topics["documents"]) is True
    page = client.get(old_prefs)
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "This subscription was deleted" in html
    assert "ana@example.com" not in html and "erased:" not in html
    repeated = app.test_client(use_cookies=False).post(old_unsub, **ONE_CLICK)
    assert repeated.status_code == 200 and "This subscription was deleted" in repeated.get_data(as_text=True)
    assert client.post(f"{old_prefs}/delete", data={"csrf_token": csrf_token(client)}).status_code == 410
    assert client.post(old_prefs, data={"csrf_token": csrf_token(client), "topics": []}).status_code == 410
    db.session.expire_all()
    assert again.status == "confirmed" and documents_on(again, topics["documents"]) is True

    new_prefs, new_unsub = links(again, topics["documents"])
    assert client.get(new_prefs).status_code == 200
    assert app.test_client(use_cookies=False).post(new_unsub, **ONE_CLICK).status_code == 200
    assert documents_on(again, topics["documents"]) is False


def test_a_link_of_an_earlier_generation_of_a_live_subscription_offers_a_fresh_link(app, client, topics):
    """A subscription deleted before erasure existed and confirmed again keeps its row (see the
    service test): its earlier links get the page that offers a fresh link, and change nothing."""
    subscriber = Subscriber(email="ana@example.com", status="deleted", generation=2, deleted_at=now_utc())
    db.session.add(subscriber)
    db.session.commit()
    old_prefs, old_unsub = links(subscriber, topics["documents"])
    subscriber = confirmed(client)
    assert subscriber.generation == 3
    page = client.get(old_prefs)
    assert page.status_code == 410
    html = page.get_data(as_text=True)
    assert "belongs to an earlier subscription" in html and 'action="/subscriptions/link"' in html
    assert "ana@example.com" not in html
    assert app.test_client(use_cookies=False).post(old_unsub, **ONE_CLICK).status_code == 410
    assert documents_on(subscriber, topics["documents"]) is True


@pytest.mark.parametrize(("days", "status"), [(400, 200), (401, 410)])
def test_one_click_works_for_400_days(app, client, topics, monkeypatch, days, status):
    subscriber = confirmed(client)
    sent = now_utc()
    _prefs, unsub = links(subscriber, topics["documents"], issued=sent.date())
    monkeypatch.setattr(views, "now_utc", lambda: sent + timedelta(days=days))
    response = app.test_client(use_cookies=False).post(unsub, **ONE_CLICK)
    assert response.status_code == status
    assert documents_on(subscriber, topics["documents"]) is (status != 200)


def test_an_expired_preferences_link_offers_a_fresh_one_by_mail(client, topics, monkeypatch):
    subscriber = confirmed(client)
    prefs, _unsub = links(subscriber, topics["documents"])
    monkeypatch.setattr(views, "now_utc", lambda: now_utc() + timedelta(days=401))
    page = client.get(prefs)
    assert page.status_code == 410
    assert "This link has expired" in page.get_data(as_text=True)

    answers = [client.post("/subscriptions/link", data={"csrf_token": csrf_token(client), "email": email})
               for email in ("ana@example.com", "nobody@example.com")]
    assert answers[0].status_code == 200 and answers[0].data == answers[1].data
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == "ana@example.com")
                             .order_by(OutgoingMail.id.desc()))
    assert mail.template == "subscription_already_active" and mail.status == "queued"
    monkeypatch.undo()
    fresh = mail.context["preferences_url"].removeprefix("http://localhost")
    assert client.get(fresh).status_code == 200


def test_the_fresh_link_form_checks_the_address_and_shares_the_form_limit(client, topics):
    response = client.post("/subscriptions/link", data={"csrf_token": csrf_token(client),
                                                        "email": "zo\u00eb@example.com"})
    assert response.status_code == 422
    assert "our mail provider refuses" in response.get_data(as_text=True)
    assert client.post("/subscriptions/link", data={"email": "ana@example.com"}).status_code == 400  # CSRF
    # The two refused forms above do not count: only accepted ones do, here made on the other form.
    for i in range(int(views.FORM_LIMIT.split()[0])):
        accepted = client.post("/subscriptions/", data={"csrf_token": csrf_token(client),
                                                        "email": f"u{i}@example.com"})
        assert accepted.status_code == 200
    blocked = client.post("/subscriptions/link", data={"csrf_token": csrf_token(client),
                                                       "email": "ana@example.com"})
    assert blocked.status_code == 429


def test_one_click_links_mailed_before_generations_keep_working(app, client, topics):
    subscriber = confirmed(client)
    assert subscriber.generation == 1  # never deleted: as every subscriber was before the migration
    legacy = subscriptions.sign_token(b"unsubscribe",
                                      struct.pack(">QQ", subscriber.id, topics["documents"].id))
    response = app.test_client(use_cookies=False).post(f"/subscriptions/unsubscribe/{legacy}", **ONE_CLICK)
    assert response.status_code == 200
    assert documents_on(subscriber, topics["documents"]) is False
