"""A change that applies to new customers before existing ones is said so on every public surface."""

import csv
import io
from datetime import timedelta

import pytest

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Document, NoticePolicy
from registry.services import publishing

FIELDS = dict(name="Acme Hosting", legal_entity="Acme GmbH", address="Street 1, Berlin",
              contact="privacy@acme.example", purpose="Hosting", transfer_mechanism="Within the EEA",
              countries=["DE"])
SENTENCE = {
    "add": "applies to new customers since",
    "change": "changed for new customers on",
    "remove": "no longer applies to new customers since",
}


def publish(change_set, *, effective_in_days, new_customers_days_ago=None):
    now = now_utc()
    new_customers = now - timedelta(days=new_customers_days_ago) if new_customers_days_ago else None
    publishing.publish(db.session, change_set, published_at=now - timedelta(days=60),
                       notice_completed_at=now - timedelta(days=60),
                       effective_at=now + timedelta(days=effective_in_days),
                       effective_new_customers_at=new_customers, now=now)


@pytest.fixture
def acme(app):
    """Acme on the list for everyone since 10 days ago."""
    change_set = publishing.create_change_set(db.session, title="Acme added")
    publishing.draft_subprocessor_change(db.session, change_set, "acme", "add", fields=FIELDS)
    publishing.publish(db.session, change_set, published_at=now_utc() - timedelta(days=40),
                       notice_completed_at=now_utc() - timedelta(days=40),
                       effective_at=now_utc() - timedelta(days=10))
    db.session.commit()


def schedule_acme(action, *, new_customers_days_ago=1):
    change_set = publishing.create_change_set(db.session, title=f"Acme {action}")
    slug = "acme-2" if action == "add" else "acme"
    fields = {**FIELDS, "name": "Acme Two"} if action == "add" else (
        {"countries": ["DE", "US"]} if action == "change" else None)
    publishing.draft_subprocessor_change(db.session, change_set, slug, action, fields=fields)
    publish(change_set, effective_in_days=10, new_customers_days_ago=new_customers_days_ago)
    db.session.commit()
    return slug


@pytest.mark.parametrize("action", ["add", "change", "remove"])
def test_list_entry_csv_and_api_say_when_new_and_existing_customers_get_the_change(acme, client, action):
    slug = schedule_acme(action)

    listing = client.get("/subprocessors/").get_data(as_text=True)
    assert SENTENCE[action] in listing and "existing customers" in listing
    entry = client.get(f"/subprocessors/{slug}").get_data(as_text=True)
    assert SENTENCE[action] in entry

    rows = list(csv.DictReader(io.StringIO(client.get("/subprocessors/export.csv").get_data(as_text=True))))
    row = next(r for r in rows if r["slug"] == slug)
    assert row["new_customers_change"] == action
    assert row["new_customers_since"] < row["existing_customers_from"]

    items = client.get("/api/v1/subprocessors").get_json()["data"]
    terms = next(i for i in items if i["slug"] == slug)["new_customers"]
    assert terms["action"] == action and terms["since"] < terms["existing_customers_from"]
    if action == "change":
        assert terms["entry"]["countries"] == ["DE", "US"]
        assert next(i for i in items if i["slug"] == slug)["countries"] == ["DE"]
    detail = client.get(f"/api/v1/subprocessors/{slug}").get_json()["data"]
    assert detail["new_customers"] == terms


def test_nothing_is_noted_for_a_change_without_an_earlier_date_for_new_customers(acme, client):
    schedule_acme("change", new_customers_days_ago=None)
    assert "new customers" not in client.get("/subprocessors/").get_data(as_text=True)
    items = client.get("/api/v1/subprocessors").get_json()["data"]
    assert [i["new_customers"] for i in items] == [None]
    rows = list(csv.DictReader(io.StringIO(client.get("/subprocessors/export.csv").get_data(as_text=True))))
    assert rows[0]["new_customers_change"] == rows[0]["new_customers_since"] == ""


def test_document_pages_and_api_say_which_version_new_customers_are_under(app, client):
    policy = NoticePolicy(key="terms", name="Terms", length=30, unit="calendar_days", calendars=[],
                          timezone="Europe/Warsaw", objection_days=None)
    db.session.add(Document(slug="terms", title="Terms of Service", notice_policy=policy))
    db.session.flush()
    document = db.session.query(Document).one()
    for text, effective_in_days, new_days_ago in (("# Terms\n\nOne.", -30, None), ("# Terms\n\nTwo.", 10, 2)):
        change_set = publishing.create_change_set(db.session, title="Terms")
        publishing.draft_document_version(db.session, change_set, document, source_md=text, summary="s",
                                          is_material=True)
        publish(change_set, effective_in_days=effective_in_days, new_customers_days_ago=new_days_ago)
    db.session.commit()

    for path in ("/documents/", "/documents/terms/"):
        html = client.get(path).get_data(as_text=True)
        assert "Version 2 applies to new customers since" in html, path
        assert "and to existing customers from" in html, path
    assert "This version applies to new customers since" in client.get(
        "/documents/terms/versions/2").get_data(as_text=True)
    # Existing customers are still under version 1: the page shows it as in effect.
    assert "One." in client.get("/documents/terms/").get_data(as_text=True)

    data = client.get("/api/v1/documents/terms").get_json()["data"]
    assert data["current_version"]["number"] == 1
    assert data["new_customers_version"]["number"] == 2
    assert data["new_customers_version"]["since"] < data["new_customers_version"]["existing_customers_from"]
    listed = client.get("/api/v1/documents").get_json()["data"][0]
    assert listed["new_customers_version"] == data["new_customers_version"]
