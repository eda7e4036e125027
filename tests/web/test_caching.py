"""Cached public pages follow content changes and scheduled effective times."""

from datetime import timedelta

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import publishing

FIELDS = dict(name="Acme Hosting", legal_entity="Acme GmbH", address="Street 1, Berlin",
              contact="privacy@acme.example", purpose="Hosting", transfer_mechanism="Within the EEA",
              countries=["DE"])


def add_acme(effective_at):
    change_set = publishing.create_change_set(db.session, title="Acme added")
    publishing.draft_subprocessor_change(db.session, change_set, "acme", "add", fields=FIELDS)
    publishing.publish(db.session, change_set, published_at=now_utc() - timedelta(days=20),
                       notice_completed_at=now_utc() - timedelta(days=20),
                       effective_at=effective_at)
    db.session.commit()


def test_a_publish_is_visible_on_the_next_request(app, client):
    before = client.get("/subprocessors/")
    assert "Acme Hosting" not in before.get_data(as_text=True)
    add_acme(now_utc() - timedelta(days=1))
    after = client.get("/subprocessors/")
    assert "Acme Hosting" in after.get_data(as_text=True)
    assert after.headers["ETag"] != before.headers["ETag"]


def test_pages_are_served_from_memory_between_checks(app, client, monkeypatch):
    cache = app.extensions["page_cache"]
    monkeypatch.setattr(cache, "check_seconds", 3600)
    first = client.get("/subprocessors/")
    add_acme(now_utc() - timedelta(days=1))
    # Within the check interval the worker does not ask the database again.
    assert client.get("/subprocessors/").data == first.data
    cache.clear()
    assert "Acme Hosting" in client.get("/subprocessors/").get_data(as_text=True)


def test_a_scheduled_change_appears_exactly_when_it_takes_effect(app, client, monkeypatch):
    cache = app.extensions["page_cache"]
    monkeypatch.setattr(cache, "check_seconds", 3600)
    effective = now_utc() + timedelta(hours=2)
    add_acme(effective)
    cache.clear()
    before = client.get("/subprocessors/")
    # Listed as announced until then ("Joins on …"), not as on the list.
    assert "Joins on" in before.get_data(as_text=True).split("Acme Hosting")[1].split("</tr>")[0]
    max_age = int(before.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 60

    later = lambda: effective + timedelta(seconds=1)  # noqa: E731
    monkeypatch.setattr("registry.web.caching.now_utc", later)
    monkeypatch.setattr("registry.web.subprocessors.now_utc", later)
    after = client.get("/subprocessors/")
    assert "Joins on" not in after.get_data(as_text=True).split("Acme Hosting")[1].split("</tr>")[0]


def test_cache_control_never_outlives_the_next_scheduled_change(app, client):
    add_acme(now_utc() + timedelta(seconds=30))
    cache_control = client.get("/subprocessors/").headers["Cache-Control"]
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    assert max_age <= 30


def test_errors_are_not_cached(app, client):
    assert client.get("/subprocessors/acme").status_code == 404
    add_acme(now_utc() - timedelta(days=1))
    assert client.get("/subprocessors/acme").status_code == 200


def test_two_workers_give_the_same_etag_for_the_same_content(demo_app, tmp_path):
    from registry import create_app
    from tests.conftest import make_settings

    other = create_app(make_settings(demo_app.config["SQLALCHEMY_DATABASE_URI"], tmp_path))
    try:
        for path in ("/subprocessors/", "/api/v1/subprocessors", "/api/v1/subprocessors/changes"
                     "?since=2020-01-01T00:00:00Z", "/api/v1/documents/privacy-policy/versions"):
            first = demo_app.test_client().get(path)
            second = other.test_client().get(path)
            assert first.status_code == second.status_code == 200
            assert first.headers["ETag"] == second.headers["ETag"], path
    finally:
        with other.app_context():
            from registry.extensions import db

            db.engine.dispose()
