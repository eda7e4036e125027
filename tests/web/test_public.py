"""Home, upcoming changes, change log, and HTTP behaviour shared by every public page."""

import re

import pytest

from registry.web.public import possessive

PUBLIC_PAGES = [
    "/", "/upcoming", "/changes", "/subprocessors/", "/subprocessors/nordlicht-cloud",
    "/subprocessors/compare", "/subprocessors/export.csv", "/documents/",
    "/documents/privacy-policy/", "/documents/privacy-policy/versions/",
    "/documents/privacy-policy/versions/2", "/documents/privacy-policy/compare",
    "/documents/privacy-policy/compare/1-2.diff",
]


def test_upcoming_shows_notice_effective_and_objection_dates(demo_client):
    html = demo_client.get("/upcoming").get_data(as_text=True)
    assert "Kestrel" in html
    assert "Notice given" in html
    assert "Effective for existing customers" in html
    assert "You may object to this change until" in html


def test_home_links_to_every_section(demo_client):
    html = demo_client.get("/").get_data(as_text=True)
    for href in ('href="/subprocessors/"', 'href="/documents/"', 'href="/upcoming"'):
        assert href in html


def test_empty_registry_pages_still_render(client):
    for path in ("/", "/upcoming", "/changes", "/subprocessors/", "/documents/"):
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_every_public_page_has_validators_and_cdn_headers(demo_client, path):
    response = demo_client.get(path)
    assert response.status_code == 200
    assert response.headers["ETag"]
    assert response.headers["Last-Modified"]
    assert "public" in response.headers["Cache-Control"]
    assert "charset=utf-8" in response.content_type
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_conditional_requests_get_304(demo_client, path):
    first = demo_client.get(path)
    by_etag = demo_client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert by_etag.status_code == 304
    assert by_etag.data == b""
    by_date = demo_client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert by_date.status_code == 304
    changed = demo_client.get(path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


def test_repeated_requests_serve_identical_bytes(demo_client):
    first = demo_client.get("/subprocessors/")
    second = demo_client.get("/subprocessors/")
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]


def test_404_page_leaks_nothing(demo_client):
    response = demo_client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Not Found" in html
    assert "Werkzeug" not in html and "Traceback" not in html
    assert response.headers["Cache-Control"] == "no-store"


def test_500_page_leaks_nothing(tmp_path):
    from registry import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path))

    @app.get("/_boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/_boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "secret internals" not in html and "Traceback" not in html
    assert "Something went wrong on our side" in html


def test_recent_changes_on_the_home_page_are_only_changes_in_effect(demo_client):
    html = demo_client.get("/").get_data(as_text=True)
    coming_up, recent = html.split('id="recent-heading"')
    assert "Kestrel" in coming_up
    assert "Kestrel" not in recent
    assert "Upcoming" not in recent


def test_change_lines_give_a_renamed_entry_its_current_name(demo_client):
    for path in ("/", "/changes"):
        html = demo_client.get(path).get_data(as_text=True)
        assert "Metricula, now Clearsight Analytics" in html, path
    log = demo_client.get("/changes").get_data(as_text=True)
    assert "Metricula, now Clearsight Analytics, updated" in log  # the demo's change title


def test_notice_given_shows_its_time_and_zone(demo_client):
    html = demo_client.get("/upcoming").get_data(as_text=True)
    given = html.split("<dt>Notice given</dt>")[1].split("</dd>")[0]
    assert re.search(r"\d{1,2} \w+ \d{4}, \d{2}:\d{2} (CET|CEST)", given), given


@pytest.mark.parametrize("path", ["/", "/upcoming", "/changes", "/subprocessors/", "/documents/"])
def test_page_titles_say_trust_center_once(demo_client, path):
    html = demo_client.get(path).get_data(as_text=True)
    title = html.split("<title>")[1].split("</title>")[0]
    assert title.count("Trust Center") == 1, title


@pytest.mark.parametrize(("name", "expected"), [
    ("Ferncastle Teamworks", "Ferncastle Teamworks'"), ("Acme", "Acme's"), ("ACME CORPS", "ACME CORPS'"),
])
def test_the_possessive_of_a_name(name, expected):
    assert possessive(name) == expected
