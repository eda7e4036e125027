"""Notice bodies (one per notice, links absolute, hash recorded) and per-recipient parts (fast, no DB)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, select

from registry.domain.deadlines import deadline_words
from registry.extensions import db
from registry.models import Delivery, Subscriber, Topic
from registry.notify import messages
from registry.services import notices, objections, publishing, subscriptions
from tests.services.test_notices import (
    SUBPROCESSOR,
    make_document,
    make_subscriber,
    make_topics,
    scheduled_change,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def configured(app, monkeypatch):
    """A base URL with a path prefix, to show that links are built from settings, not a request."""
    settings = app.config["REGISTRY"].with_overrides(base_url="https://legal.example.com/registry",
                                                      unsubscribe_mailto="leave@example.com")
    monkeypatch.setitem(app.config, "REGISTRY", settings)
    return app


@pytest.fixture
def notice(configured):
    topics = make_topics()
    make_subscriber("reader@example.com", topics)
    document = make_document()
    first = publishing.create_change_set(db.session, title="First version")
    publishing.draft_document_version(db.session, first, document, source_md="# Privacy\n\nv1",
                                      summary="First", is_material=True)
    publishing.publish(db.session, first, published_at=NOW - timedelta(days=90),
                       notice_completed_at=NOW - timedelta(days=90), effective_at=NOW - timedelta(days=60),
                       now=NOW)
    change_set = scheduled_change(material=True, document=document, subprocessor="acme-mail",
                                  title="Retention & transfers", now=NOW, effective_days=45)
    change_set.effective_new_customers_at = NOW + timedelta(days=20)
    return notices.start_notice(db.session, change_set, now=NOW)


def test_the_notice_body_says_what_changes_and_when(notice):
    batch = messages.notice_batch_message(db.session, notice)
    change_set = db.session.get(publishing.ChangeSet, notice.change_set_id)
    assert batch.subject == "Notice of change: Retention & transfers"
    for body in (batch.text, batch.html):
        assert "Privacy Policy" in body and "Acme Mail" in body
        assert "What changes and why." in body
        assert messages.PREFERENCES_KEY in body and messages.UNSUBSCRIBE_KEY in body
        assert "https://legal.example.com/registry/documents/privacy-policy/compare?" in body
        assert "https://legal.example.com/registry/subprocessors/acme-mail" in body
        effective = messages.moment(change_set.effective_at, "Europe/Warsaw")
        assert effective["local"] in body and effective["utc"] in body
        assert messages.moment(change_set.effective_new_customers_at, "Europe/Warsaw")["utc"] in body
        assert deadline_words(change_set.objection_deadline_at, "Europe/Warsaw").text in body
        assert messages.OBJECTION_KEY in body
    assert "from=1" in batch.text and "to=2" in batch.text and "view=redline" in batch.text
    # The redline link opens the comparison page.
    assert "Retention &amp; transfers" in batch.html and "<script" not in batch.html


def test_the_links_resolve(notice, client):
    batch = messages.notice_batch_message(db.session, notice)
    for delivery in db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)):
        delivery.status = "sent"
    notices.settle(db.session, [notice.id], now=NOW)
    db.session.commit()
    for url in set(re.findall(r"https://legal\.example\.com/registry(/[^\s\"<]*)", batch.text)):
        path = url.replace("&amp;", "&")
        assert client.get(path).status_code == 200, path


def test_the_html_has_its_css_inlined(notice):
    html = messages.notice_batch_message(db.session, notice).html
    assert "<style" not in html
    assert 'style="' in html


def test_the_body_hash_is_recorded_on_the_notice(notice):
    batch = messages.notice_batch_message(db.session, notice)
    assert len(batch.body_sha256) == 64
    assert notice.body_sha256 == batch.body_sha256
    assert batch.body_sha256 == messages.body_sha256(batch.subject, batch.text, batch.html)
    again = messages.notice_batch_message(db.session, notice)
    assert again == batch
    # Parts are delimited: moving text between them changes the hash.
    assert messages.body_sha256("ab", "c", "") != messages.body_sha256("a", "bc", "")


def test_a_non_material_notice_names_its_topic(configured):
    topics = make_topics()
    make_subscriber("subs@example.com", topics, ("subprocessors",))
    change_set = scheduled_change(material=False, subprocessor="acme-mail", now=NOW)
    batch = messages.notice_batch_message(db.session, notices.start_notice(db.session, change_set, now=NOW))
    assert batch.subject == "Update: Spring update"
    assert 'subscribed to "Subprocessors"' in batch.text
    assert "- New sub-processor: Acme Mail" in batch.text
    assert ("\n  Legal entity: Acme Mail GmbH\n  Purpose: Email delivery\n"
            "  Processing locations: Germany\n  Transfer mechanism: Within the EEA\n") in batch.text


def test_a_sub_processor_change_lists_the_fields_that_changed(configured):
    make_topics()
    add = publishing.create_change_set(db.session, title="Add")
    publishing.draft_subprocessor_change(db.session, add, "acme-mail", "add", fields=SUBPROCESSOR)
    publishing.publish(db.session, add, published_at=NOW - timedelta(days=30),
                       notice_completed_at=NOW - timedelta(days=30), effective_at=NOW - timedelta(days=1),
                       now=NOW)
    change = publishing.create_change_set(db.session, title="Move", is_material=True)
    publishing.draft_subprocessor_change(db.session, change, "acme-mail", "change",
                                         fields={"countries": ["US"], "transfer_mechanism": "SCCs"})
    publishing.publish(db.session, change, published_at=NOW, notice_completed_at=None,
                       effective_at=NOW + timedelta(days=30), now=NOW)
    batch = messages.notice_batch_message(db.session, notices.start_notice(db.session, change, now=NOW))
    # Each changed field with the label the site uses, old and new; countries by name, not code.
    assert ("- Sub-processor changed: Acme Mail (Email delivery)\n"
            "  Processing locations: Germany → United States\n"
            "  Transfer mechanism: Within the EEA → SCCs\n") in batch.text
    assert "Purpose:" not in batch.text  # unchanged fields are not listed
    assert "<th scope=\"row\"" in batch.html and "United States</ins>" in batch.html


def test_recipient_parts(configured):
    db.session.add(Subscriber(id=7, email="reader@example.com", status="confirmed", generation=4))
    db.session.flush()
    recipient = messages.recipient(42, "reader@example.com", 7, 3)
    preferences = subscriptions.preferences_url(7, 4)  # the subscription's current generation
    unsubscribe = subscriptions.unsubscribe_url(7, 3, 4)
    assert recipient.email == "reader@example.com"
    assert recipient.substitutions == {messages.PREFERENCES_KEY: preferences,
                                       messages.UNSUBSCRIBE_KEY: unsubscribe,
                                       messages.OBJECTION_KEY: objections.notice_url(42)}
    assert unsubscribe.startswith("https://legal.example.com/registry/")
    token = unsubscribe.rsplit("/", 1)[1]
    assert recipient.headers == {
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:leave@example.com?subject=unsubscribe-{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert recipient.custom_args == {"delivery_id": "42"}
    # Opaque: the token does not carry the address.
    assert "reader" not in unsubscribe and "reader" not in preferences


def test_without_a_topic_there_is_no_one_click(configured):
    recipient = messages.recipient(1, "a@example.com", 7, None)
    assert "List-Unsubscribe-Post" not in recipient.headers
    # No subscriber 7: generation 0, which no subscription ever has, so the link opens nothing.
    assert recipient.headers["List-Unsubscribe"] == f"<{subscriptions.preferences_url(7, 0)}>"


def test_recipients_read_the_generations_once_per_thousand(configured):
    """The links are HMACs: 20,000 recipients cost 20 queries (their speed is bench/dispatch_bench.py's)."""
    statements = []

    def count(*_args):
        statements.append(1)

    rows = [(i, f"r{i}@example.com", i, 1) for i in range(20_000)]
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        made = messages.recipients(rows)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(made) == 20_000
    assert len(statements) == 20  # only the generations come from the database
    assert len({r.substitutions[messages.UNSUBSCRIBE_KEY] for r in made}) == 20_000


def test_the_one_click_link_of_a_delivery_acts_on_its_topic(notice, client):
    """The delivery's topic goes into the link: for Administrative, one click ends the subscription."""
    delivery = db.session.scalar(select(Delivery).where(Delivery.notice_id == notice.id))
    assert db.session.get(Topic, delivery.topic_id).is_administrative
    db.session.commit()
    recipient = messages.recipient(delivery.id, delivery.email, delivery.subscriber_id, delivery.topic_id)
    path = urlsplit(recipient.substitutions[messages.UNSUBSCRIBE_KEY]).path.removeprefix("/registry")
    response = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.get(Subscriber, delivery.subscriber_id).status == "deleted"


@pytest.mark.parametrize("template, context", [
    ("effective_date_moved", {"change_set_id": 5, "title": "T", "reason": "the notice completed late",
                              "before": "2026-04-01T22:00:00+00:00", "after": "2026-04-03T22:00:00+00:00"}),
    ("dispatch_failed", {"notice_id": 9, "change_set_id": 5, "count": 2, "reason": "400 bad request"}),
])
def test_staff_emails_render_with_links(configured, template, context):
    rendered = messages.render_email(template, context)
    assert "https://legal.example.com/registry/admin/notices/5/" in rendered.text
    assert "https://legal.example.com/registry/admin/notices/5/" in rendered.html
    assert rendered.subject and "\n" not in rendered.subject


def test_moment_shows_the_legal_time_zone_and_utc():
    from zoneinfo import ZoneInfo

    expected = {"local": "17 March 2026, 00:00 CET", "utc": "2026-03-16 23:00 UTC",
                "iso": "2026-03-16T23:00:00+00:00"}
    assert messages.moment(datetime(2026, 3, 16, 23, tzinfo=UTC), "Europe/Warsaw") == expected
    # Whatever zone the value carries, the UTC part is UTC.
    warsaw = datetime(2026, 3, 17, tzinfo=ZoneInfo("Europe/Warsaw"))
    assert messages.moment(warsaw, "Europe/Warsaw") == expected
    summer = messages.moment(datetime(2026, 4, 30, 22, tzinfo=UTC), "Europe/Warsaw")
    assert summer["local"] == "1 May 2026, 00:00 CEST" and summer["utc"] == "2026-04-30 22:00 UTC"
    assert messages.moment(None, "Europe/Warsaw") is None
