"""The public subscription pages: same answer for every address, limits, double opt-in, one-click."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import OutgoingMail, Subscriber, Subscription, Topic
from registry.models.subscribers import ConfirmationToken
from registry.services import subscriptions
from registry.web import subscriptions as views
from tests.conftest import csrf_token


@pytest.fixture
def topics(app):
    rows = {key: Topic(key=key, name=name, description=f"About {name}.", is_administrative=admin,
                       is_default_on=default, position=i)
            for i, (key, name, admin, default) in enumerate([
                ("administrative", "Administrative", True, True),
                ("subprocessors", "Sub-processor changes", False, True),
                ("non-material", "Non-material updates", False, False)])}
    db.session.add_all(rows.values())
    db.session.commit()
    return rows


def post_subscribe(client, email, topics=("subprocessors",), **kwargs):
    return client.post("/subscriptions/", data={"csrf_token": csrf_token(client), "email": email,
                                                "topics": list(topics)}, **kwargs)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def last_link(email="ana@example.com") -> str:
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == email)
                             .order_by(OutgoingMail.id.desc()))
    return mail.context["confirm_url"].removeprefix("http://localhost")


def confirm(client, email="ana@example.com", topics=("subprocessors",)) -> Subscriber:
    post_subscribe(client, email, topics)
    link = last_link(email)
    client.post(link, data={"csrf_token": csrf_token(client)})
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def test_the_form_shows_administrative_checked_and_disabled(client, topics):
    html = client.get("/subscriptions/").get_data(as_text=True)
    admin = html[html.index('id="topic-'):html.index("Administrative")]
    assert "checked disabled" in admin
    assert "cannot be turned off" in html
    assert 'name="csrf_token"' in html
    assert 'value="subprocessors"' in html and 'value="administrative"' not in html


def test_the_answer_is_the_same_whether_or_not_the_address_is_known(client, topics):
    confirm(client, "active@example.com")
    post_subscribe(client, "pending@example.com")
    for _ in range(3):
        post_subscribe(client, "limited@example.com")
    answers = [post_subscribe(client, email) for email in
               ("new@example.com", "active@example.com", "pending@example.com", "limited@example.com")]
    assert {a.status_code for a in answers} == {200}
    assert len({a.data for a in answers}) == 1
    assert "Check your inbox" in answers[0].get_data(as_text=True)
    queued = select(OutgoingMail.to, func.count()).where(OutgoingMail.status == "queued")
    sent = dict(db.session.execute(queued.group_by(OutgoingMail.to)).all())
    assert sent["limited@example.com"] == 3


def test_csrf_is_required_on_the_subscribe_and_confirm_forms(client, topics):
    response = client.post("/subscriptions/", data={"email": "ana@example.com"})
    assert response.status_code == 400
    assert count(Subscriber) == 0
    post_subscribe(client, "ana@example.com")
    response = client.post(last_link(), data={})
    assert response.status_code == 400
    assert db.session.scalar(select(Subscriber.status)) == "pending"


def test_invalid_input_re_shows_the_form_with_the_error(client, topics):
    response = post_subscribe(client, "not an address")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "An email address has no spaces" in html and 'aria-invalid="true"' in html
    assert 'value="not an address"' in html
    response = post_subscribe(client, "ana@example.com", topics=["nope"])
    assert response.status_code == 422 and "Choose topics from the list" in response.get_data(as_text=True)
    assert count(Subscriber) == 0 and count(OutgoingMail) == 0


def test_per_ip_limit_on_the_form(client, topics):
    for i in range(views_limit()):
        assert post_subscribe(client, f"user{i}@example.com").status_code == 200
    blocked = post_subscribe(client, "one-more@example.com")
    assert blocked.status_code == 429
    assert "Too many subscription requests" in blocked.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber).where(Subscriber.email == "one-more@example.com")) is None
    other_ip = post_subscribe(client, "elsewhere@example.com", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_ip.status_code == 200
    assert client.get("/subscriptions/").status_code == 200  # only the POST is limited


def test_the_limit_counts_only_accepted_subscriptions(client, topics):
    # Six typos, each corrected: the network may still make its ten subscriptions this hour.
    for i in range(6):
        refused = post_subscribe(client, f"typo{i}@@example")
        assert refused.status_code == 422
    for i in range(views_limit()):
        assert post_subscribe(client, f"user{i}@example.com").status_code == 200, i
    assert post_subscribe(client, "one-more@example.com").status_code == 429


def views_limit() -> int:
    return int(views.FORM_LIMIT.split()[0])


def test_get_on_the_confirmation_link_changes_nothing(client, topics):
    post_subscribe(client, "ana@example.com")
    link = last_link()
    for _ in range(3):
        page = client.get(link)
        assert page.status_code == 200
        assert f'action="{link}"' in page.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber.status)) == "pending"
    assert db.session.scalar(select(ConfirmationToken.used_at)) is None
    assert count(Subscription) == 0


def test_confirming_leads_to_the_preferences_and_the_link_is_single_use(client, topics):
    post_subscribe(client, "ana@example.com", topics=["non-material"])
    link = last_link()
    response = client.post(link, data={"csrf_token": csrf_token(client)})
    assert response.status_code == 303
    subscriber = db.session.scalar(select(Subscriber))
    assert subscriber.status == "confirmed"
    assert response.headers["Location"].startswith(
        f"/subscriptions/preferences/{prefs_token(subscriber)}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "your subscription is confirmed" in page
    again = client.post(link, data={"csrf_token": csrf_token(client)})
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    assert client.get(link).status_code == 410


def test_expired_links_explain_what_to_do(client, topics, monkeypatch):
    post_subscribe(client, "ana@example.com")
    link = last_link()
    later = now_utc() + timedelta(hours=72, seconds=1)
    monkeypatch.setattr(views, "now_utc", lambda: later)
    for response in (client.get(link), client.post(link, data={"csrf_token": csrf_token(client)})):
        assert response.status_code == 410
        assert "Subscribe again" in response.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber.status)) == "pending"


def test_unknown_confirmation_links(client, topics):
    assert client.get("/subscriptions/confirm/nonsense").status_code == 404
    response = client.post("/subscriptions/confirm/nonsense", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 404 and "does not work" in response.get_data(as_text=True)


def test_preferences_change_topics_show_history_and_delete(client, topics):
    subscriber = confirm(client)
    url = f"/subscriptions/preferences/{prefs_token(subscriber)}"
    html = client.get(url).get_data(as_text=True)
    assert "ana@example.com" in html and "No notices have been sent" in html
    response = client.post(url, data={"csrf_token": csrf_token(client), "topics": ["non-material"]})
    assert response.status_code == 303 and "saved=1" in response.headers["Location"]
    choices = {t.key: on for t, on in subscriptions.choices_of(db.session, subscriber)}
    assert choices == {"administrative": True, "subprocessors": False, "non-material": True}
    assert client.post(url, data={"topics": []}).status_code == 400  # CSRF stays on
    response = client.post(f"{url}/delete", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 200
    db.session.refresh(subscriber)
    assert subscriber.status == "deleted" and subscriber.deleted_at is not None
    gone = client.get(url)
    assert gone.status_code == 410 and "This subscription was deleted" in gone.get_data(as_text=True)


def test_forged_preferences_links_are_404(client, topics):
    assert client.get("/subscriptions/preferences/AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    valid_for_nobody = subscriptions.preferences_token(424242, 1)
    assert client.get(f"/subscriptions/preferences/{valid_for_nobody}").status_code == 404


def test_one_click_post_without_cookies_answers_200_without_redirect(app, client, topics):
    subscriber = confirm(client)
    url = unsubscribe_path(subscriber, topics["subprocessors"])
    mail_client = app.test_client(use_cookies=False)
    for _ in range(2):  # idempotent
        response = mail_client.post(url, data="List-Unsubscribe=One-Click",
                                    content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200
        assert "Location" not in response.headers
        assert "Set-Cookie" not in response.headers
        assert len(response.data) < 20_000
    prefs = client.get(f"/subscriptions/preferences/{prefs_token(subscriber)}")
    html = prefs.get_data(as_text=True)
    assert " checked" not in checkbox(html, topics["subprocessors"])
    assert " checked" in checkbox(html, topics["administrative"])
    assert db.session.scalar(select(Subscription.is_subscribed).where(
        Subscription.subscriber_id == subscriber.id,
        Subscription.topic_id == topics["subprocessors"].id)) is False


def test_one_click_on_administrative_ends_the_subscription(app, client, topics):
    subscriber = confirm(client)
    url = unsubscribe_path(subscriber, topics["administrative"])
    response = app.test_client(use_cookies=False).post(url, data="List-Unsubscribe=One-Click",
                                                       content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    db.session.refresh(subscriber)
    assert subscriber.status == "deleted"
    prefs = client.get(f"/subscriptions/preferences/{prefs_token(subscriber)}")
    assert "This subscription was deleted" in prefs.get_data(as_text=True)


def test_get_on_the_unsubscribe_link_shows_a_button_and_changes_nothing(client, topics):
    subscriber = confirm(client)
    url = unsubscribe_path(subscriber, topics["subprocessors"])
    page = client.get(url)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'action="{url}"' in html and "Unsubscribe from Sub-processor changes" in html
    assert db.session.scalar(select(Subscription.is_subscribed).where(
        Subscription.subscriber_id == subscriber.id,
        Subscription.topic_id == topics["subprocessors"].id)) is True


def test_forged_unsubscribe_links(app, topics):
    mail_client = app.test_client(use_cookies=False)
    assert mail_client.post("/subscriptions/unsubscribe/forged-token-xxxxxxxxxxxxxxxx").status_code == 404
    nobody = subscriptions.unsubscribe_token(999, topics["subprocessors"].id, 1)
    assert mail_client.post(f"/subscriptions/unsubscribe/{nobody}").status_code == 404
    assert mail_client.get(f"/subscriptions/unsubscribe/{nobody}").status_code == 404


def checkbox(html: str, topic: Topic) -> str:
    return re.search(rf'<input[^>]*id="topic-{topic.id}"[^>]*>', html).group(0)


def unsubscribe_path(subscriber: Subscriber, topic: Topic) -> str:
    token = subscriptions.unsubscribe_token(subscriber.id, topic.id, subscriber.generation)
    return f"/subscriptions/unsubscribe/{token}"


def prefs_token(subscriber: Subscriber) -> str:
    return subscriptions.preferences_token(subscriber.id, subscriber.generation)


def test_nav_has_a_subscribe_link(client, topics):
    assert 'href="/subscriptions/"' in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(("email", "message"), [
    ("ana\u202e@example.com", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("ana@exa\u200bmple.com", "U+200B ZERO WIDTH SPACE"),
    ("zoë@example.com", "our mail provider refuses &#39;ë&#39;"),
    ("double..dot@example.com", "two dots in a row"),
    ("user@[192.0.2.1]", "not an IP address"),
])
def test_the_form_refuses_what_the_provider_refuses_and_invisible_characters(client, topics, email, message):
    response = post_subscribe(client, email)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(Subscriber) == 0 and count(OutgoingMail) == 0


def test_an_idn_domain_is_stored_and_mailed_in_punycode(client, topics):
    assert post_subscribe(client, "Ula@Exämple.PL").status_code == 200
    assert db.session.scalar(select(Subscriber.email)) == "ula@xn--exmple-cua.pl"
    assert db.session.scalar(select(OutgoingMail.to)) == "ula@xn--exmple-cua.pl"


def test_a_subscriber_downloads_their_own_data(client, topics):
    subscriber = confirm(client, topics=["non-material"])
    url = f"/subscriptions/preferences/{prefs_token(subscriber)}"
    assert f'href="{url}/data.json"' in client.get(url).get_data(as_text=True)
    response = client.get(f"{url}/data.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert (data["email"], data["status"], data["source"]) == ("ana@example.com", "confirmed", "form")
    assert {t["key"]: t["subscribed"] for t in data["topics"]} == {
        "administrative": True, "subprocessors": False, "non-material": True}
    assert data["notices"] == [] and data["confirmed_at"]
    assert client.get(f"/subscriptions/preferences/{'A' * 43}/data.json").status_code == 404


def test_a_form_error_changes_the_title_and_the_summary_takes_the_focus(client, topics):
    page = post_subscribe(client, "not-an-address")
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert html.split("<title>")[1].startswith("Error: Subscribe to notices")
    summary = html.split('class="notice notice-error error-summary"')[1].split("</div>")[0]
    assert 'tabindex="-1" autofocus' in summary
    assert '<a href="#email">Email address: ' in summary
    fine = client.get("/subscriptions/").get_data(as_text=True)
    assert fine.split("<title>")[1].startswith("Subscribe to notices")
    assert "error-summary" not in fine
