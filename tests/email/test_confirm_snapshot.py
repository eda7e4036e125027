"""Snapshots of the subscription emails (subject, text, HTML); UPDATE_SNAPSHOTS=1 rewrites them."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import OutgoingMail, Subscriber, Topic
from registry.notify.messages import render_email
from registry.services import subscriptions

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = datetime(2026, 3, 27, 10, 30, tzinfo=UTC)  # the day before summer time, to pin the zone name


@pytest.fixture
def queued(app, monkeypatch):
    monkeypatch.setattr(subscriptions, "new_token", lambda: "frozen-token-for-the-snapshot")
    db.session.add_all([
        Topic(id=1, key="administrative", name="Administrative", is_administrative=True, position=0),
        Topic(id=2, key="subprocessors", name="Sub-processor changes", position=1),
        Topic(id=3, key="non-material", name="Non-material <updates> & fixes", position=2),
    ])
    db.session.flush()

    def queue(email: str, keys: list[str]) -> OutgoingMail:
        subscriptions.subscribe(db.session, email=email, topic_keys=keys, now=NOW)
        return db.session.scalar(select(OutgoingMail).order_by(OutgoingMail.id.desc()))

    return queue


def check(name: str, rendered) -> None:
    folder = SNAPSHOTS / name
    actual = {"subject.txt": rendered.subject + "\n", "body.txt": rendered.text, "body.html": rendered.html}
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for filename, content in actual.items():
            (folder / filename).write_text(content, encoding="utf-8")
    for filename, content in actual.items():
        path = folder / filename
        assert path.exists(), f"{path} is missing; run with UPDATE_SNAPSHOTS=1 to create it"
        assert content == path.read_text(encoding="utf-8"), (
            f"{name}/{filename} differs from its snapshot; if the change is intended, "
            "rerun with UPDATE_SNAPSHOTS=1 and review the diff")


def test_confirmation_email(queued):
    mail = queued("ana@example.com", ["non-material"])
    assert mail.template == "confirm_subscription"
    rendered = render_email(mail.template, mail.context)
    assert "http://localhost/subscriptions/confirm/frozen-token-for-the-snapshot" in rendered.text
    assert "Non-material &lt;updates&gt; &amp; fixes" in rendered.html
    assert "<style" not in rendered.html  # inlined for mail clients
    check("confirm_subscription", rendered)


def test_already_subscribed_email(queued):
    db.session.add(Subscriber(id=7, email="ana@example.com", status="confirmed"))
    db.session.flush()
    mail = queued("ana@example.com", [])
    assert mail.template == "subscription_already_active"
    rendered = render_email(mail.template, mail.context)
    assert subscriptions.preferences_url(7, 1, NOW.date()) in rendered.text
    check("subscription_already_active", rendered)
