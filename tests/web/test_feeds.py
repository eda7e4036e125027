"""RSS and Atom feeds: valid for feedparser (hostile titles too), entries from notice start, 304s."""

from datetime import timedelta

import feedparser
import pytest
from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, Document
from registry.services import publishing, site
from registry.web.feeds import xml_text
from tests.factories import terms_document

FORMATS = {"atom": "application/atom+xml", "rss": "application/rss+xml"}
HOSTILE = "Fees & terms ]]> <script>alert(1)</script> \x01\x08\x0b\x0c\x1f\ufffe end"


def feed_paths(slugs):
    paths = ["/feeds/all", "/feeds/subprocessors", *(f"/feeds/documents/{slug}" for slug in slugs)]
    return [(f"{path}.{fmt}", fmt) for path in paths for fmt in FORMATS]


def parse(response):
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def test_every_demo_feed_parses_and_has_entries(demo_app, demo_client):
    with demo_app.app_context():
        slugs = list(db.session.scalars(select(Document.slug)))
    assert slugs
    for path, fmt in feed_paths(slugs):
        response = demo_client.get(path)
        assert response.status_code == 200, path
        assert response.content_type == f"{FORMATS[fmt]}; charset=utf-8"
        parsed = parse(response)
        assert parsed.version.startswith(fmt), path
        assert parsed.entries, path
        for entry in parsed.entries:
            assert entry.id.startswith("tag:localhost,2025:change-sets/")
            assert entry.link.startswith("http://localhost/")
            assert "Notice given" in entry.description and "UTC" in entry.description


def test_guids_are_stable_and_entries_link_to_the_redline(demo_client):
    first = parse(demo_client.get("/feeds/documents/privacy-policy.atom"))
    second = parse(demo_client.get("/feeds/documents/privacy-policy.rss"))
    assert [e.id for e in first.entries] == [e.id for e in second.entries]
    newest = first.entries[0]
    assert "/documents/privacy-policy/compare?to=" in newest.link
    assert "redline" in newest.content[0].value
    assert "You may object to this change until" in newest.content[0].value


@pytest.mark.parametrize(("path", "page"), [
    ("/feeds/all.rss", "/changes"), ("/feeds/subprocessors.rss", "/subprocessors/"),
    ("/feeds/documents/privacy-policy.rss", "/documents/privacy-policy/"),
])
def test_the_rss_channel_links_to_the_site_s_page_not_to_the_feed(demo_client, path, page):
    response = demo_client.get(path)
    assert parse(response).feed.link == f"http://localhost{page}"
    xml = response.get_data(as_text=True)
    assert f"<link>http://localhost{page}</link>" in xml
    assert f'<atom:link href="http://localhost{path}" rel="self"/>' in xml


def test_an_entry_of_several_changes_links_each_of_them(demo_app, demo_client):
    """The demo's newest change adds a sub-processor and a Privacy Policy version: the entry leads to
    its line in the change log, and its text to the redline and to the sub-processor's entry."""
    with demo_app.app_context():
        newest = db.session.scalars(select(ChangeSet).where(ChangeSet.published_at.is_not(None))
                                    .order_by(ChangeSet.published_at.desc())).first()
        items = [f"/documents/{v.document.slug}/compare?to={v.number}" for v in newest.document_versions]
        items += [f"/subprocessors/{r.subprocessor.slug}" for r in newest.subprocessor_records]
    assert len(items) >= 2
    for fmt in FORMATS:
        entry = parse(demo_client.get(f"/feeds/all.{fmt}")).entries[0]
        assert entry.link == f"http://localhost/changes#change-{newest.id}"
        for item in items:
            assert f'href="http://localhost{item}' in entry.description, (fmt, item)
    assert f'id="change-{newest.id}"' in demo_client.get("/changes").get_data(as_text=True)
    # An entry of one change leads to it directly.
    single = parse(demo_client.get("/feeds/documents/privacy-policy.atom")).entries[0]
    assert "/documents/privacy-policy/compare?to=" in single.link


@pytest.mark.parametrize(("path", "feed"), [
    ("/", "/feeds/all"), ("/changes", "/feeds/all"), ("/upcoming", "/feeds/all"),
    ("/subprocessors/", "/feeds/subprocessors"), ("/subprocessors/kestrel-messaging", "/feeds/subprocessors"),
    ("/documents/privacy-policy/", "/feeds/documents/privacy-policy"),
    ("/documents/privacy-policy/versions/", "/feeds/documents/privacy-policy"),
    ("/documents/privacy-policy/versions/1", "/feeds/documents/privacy-policy"),
])
def test_every_page_a_feed_follows_shows_a_visible_feed_link(demo_client, path, feed):
    html = demo_client.get(path).get_data(as_text=True)
    body = html[html.index("<main"):]  # not the <head>'s autodiscovery links
    assert f'<a href="{feed}.atom" type="application/atom+xml">Atom feed</a>' in body, path
    assert f'<a href="{feed}.rss" type="application/rss+xml">RSS feed</a>' in body, path


@pytest.mark.parametrize("path", ["/feeds/all.atom", "/feeds/all.rss", "/feeds/subprocessors.rss",
                                  "/feeds/documents/privacy-policy.atom"])
def test_conditional_requests_get_304(demo_client, path):
    first = demo_client.get(path)
    assert first.headers["ETag"] and first.headers["Last-Modified"]
    by_etag = demo_client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert by_etag.status_code == 304 and by_etag.data == b""
    by_date = demo_client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert by_date.status_code == 304
    assert demo_client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize("path", ["/", "/subprocessors/", "/documents/privacy-policy/", "/subscriptions/"])
def test_autodiscovery_links_on_every_public_page(demo_client, path):
    html = demo_client.get(path).get_data(as_text=True)
    assert '<link rel="alternate" type="application/atom+xml"' in html
    assert 'href="/feeds/all.atom"' in html and 'href="/feeds/all.rss"' in html
    if path.startswith("/documents/"):
        assert 'href="/feeds/documents/privacy-policy.atom"' in html


def test_unknown_feeds_are_404(demo_client):
    for path in ("/feeds/all.xml", "/feeds/documents/nope.atom", "/feeds/documents/Bad_Slug.rss",
                 "/feeds/documents/privacy-policy.json"):
        assert demo_client.get(path).status_code == 404, path


@pytest.fixture
def document(app):
    return terms_document()


def change(document, title, summary="A summary.", *, published_at=None, effective_at=None):
    change_set = publishing.create_change_set(db.session, title=title, summary=summary)
    publishing.draft_document_version(db.session, change_set, document, source_md=f"# {title}\n\nText.",
                                      summary="What changes.", is_material=True)
    if published_at is not None:
        publishing.publish(db.session, change_set, published_at=published_at,
                           effective_at=effective_at or published_at + timedelta(days=30),
                           notice_completed_at=published_at)
    site.touch(db.session)
    db.session.commit()
    return change_set


def titles(client, path):
    return [entry.title for entry in parse(client.get(path)).entries]


def test_an_entry_appears_when_its_notice_starts_not_when_it_takes_effect(client, document):
    now = now_utc()
    change(document, "Not yet announced")
    upcoming = change(document, "Announced, effective next month", published_at=now - timedelta(days=1),
                      effective_at=now + timedelta(days=30))
    for fmt in FORMATS:
        assert titles(client, f"/feeds/all.{fmt}") == ["Announced, effective next month"]
        assert titles(client, f"/feeds/documents/terms.{fmt}") == ["Announced, effective next month"]
        assert titles(client, f"/feeds/subprocessors.{fmt}") == []
    entry = parse(client.get("/feeds/all.atom")).entries[0]
    assert entry.published_parsed[:5] == upcoming.published_at.utctimetuple()[:5]
    # Withdrawn changes leave the feed.
    upcoming.status = "withdrawn"
    site.touch(db.session)
    db.session.commit()
    assert titles(client, "/feeds/all.atom") == []


def test_entries_carry_dates_in_both_zones_and_a_moved_date_note(client, document):
    now = now_utc().replace(microsecond=0)
    change_set = change(document, "Moved", published_at=now - timedelta(days=2),
                        effective_at=now + timedelta(days=40))
    change_set.planned_effective_at = now + timedelta(days=30)
    change_set.effective_moved_at = now - timedelta(days=1)
    change_set.objection_deadline_at = now + timedelta(days=20)
    site.touch(db.session)
    db.session.commit()
    html = parse(client.get("/feeds/all.rss")).entries[0].description
    assert "Effective:" in html and "You may object to this change until" in html and "Date moved" in html
    utc = change_set.effective_at.strftime("%Y-%m-%d %H:%M UTC")
    assert utc in html and ("CET" in html or "CEST" in html)


def test_hostile_titles_still_parse(client, document):
    now = now_utc()
    nul = "\x00" if db.engine.dialect.name == "sqlite" else ""  # PostgreSQL refuses NUL in text
    document.title = HOSTILE + nul
    change(document, HOSTILE + nul, summary=HOSTILE + nul, published_at=now - timedelta(days=1))
    for path in ("/feeds/all.atom", "/feeds/all.rss", "/feeds/documents/terms.atom",
                 "/feeds/documents/terms.rss"):
        response = client.get(path)
        assert response.status_code == 200
        [entry] = parse(response).entries
        assert entry.title.startswith("Fees & terms ]]>")
        assert entry.title.endswith(" end")
        assert b"<script>" not in response.data


def test_xml_text_strips_what_xml_forbids():
    assert xml_text("a\x00b\x01c\x1fd\te\nf\ufffeg\ud800h") == "abcd\te\nfgh"
    assert xml_text(None) == ""


def test_a_moved_date_is_an_entry_of_its_own(client, document):
    """Issue 8 §3: when a date moves, the feed says so, as the mail does to those already told."""
    now = now_utc().replace(microsecond=0)
    change_set = publishing.create_change_set(db.session, title="Late notice", summary="S.")
    publishing.draft_document_version(db.session, change_set, document, source_md="# T\n\nText.",
                                      summary="What changes.", is_material=True)
    publishing.publish(db.session, change_set, published_at=now - timedelta(days=5), notice_completed_at=None,
                       effective_at=now + timedelta(days=20))
    [moved] = publishing.postpone_overdue(db.session, now=now)  # 30 days' notice cannot end in 20
    db.session.commit()
    for fmt in FORMATS:
        assert titles(client, f"/feeds/all.{fmt}") == ["Date moved: Late notice", "Late notice"]
    entry = parse(client.get("/feeds/all.atom")).entries[0]
    assert entry.id.startswith(f"tag:localhost,2025:change-sets/{moved.id}/moves/")
    html = entry.content[0].value
    assert "the notice is still being sent" in html
    assert "Now takes effect" in html and "Was to take effect" in html
    assert "You may object to this change until" in html


def test_a_withdrawal_is_an_entry_and_a_change_log_line_with_its_reason(client, document, make_user):
    from registry.services import workflow

    now = now_utc().replace(microsecond=0)
    change_set = change(document, "Short-lived", published_at=now - timedelta(days=1),
                        effective_at=now + timedelta(days=30))
    workflow.withdraw(db.session, change_set, actor=make_user("approver"),
                      note="The vendor withdrew its offer.", now=now)
    db.session.commit()
    for fmt in FORMATS:
        assert titles(client, f"/feeds/all.{fmt}") == ["Withdrawn: Short-lived"]
        assert titles(client, f"/feeds/documents/terms.{fmt}") == ["Withdrawn: Short-lived"]
    html = parse(client.get("/feeds/all.atom")).entries[0].content[0].value
    assert "We withdrew this change" in html and "Why: The vendor withdrew its offer." in html
    page = client.get("/changes").get_data(as_text=True)
    assert "Short-lived" in page and "Withdrawn on" in page and "Why: The vendor withdrew its offer." in page
