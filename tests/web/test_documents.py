"""Documents: current version, archive, redline, side by side and the source diff."""

import re

import pytest

from registry.extensions import db
from registry.models import Document, NoticePolicy
from tests.services.test_publishing import publish_version


@pytest.fixture
def policy_document(app):
    policy = NoticePolicy(key="privacy-policy", name="Privacy", length=3, unit="business_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=10)
    document = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=policy)
    db.session.add(document)
    db.session.flush()
    return document


def test_documents_index_lists_every_document(demo_client):
    html = demo_client.get("/documents/").get_data(as_text=True)
    for title in ("Privacy Policy", "Cookie Policy", "Data Processing Agreement", "Terms of Service"):
        assert title in html
    # The announced privacy policy version already applies to new customers.
    assert "Version 4 applies to new customers since" in html
    assert "and to existing customers from" in html


def test_current_version_is_the_latest_effective_one(demo_client):
    html = demo_client.get("/documents/privacy-policy/").get_data(as_text=True)
    assert "Version 3" in html
    assert "In effect for existing customers since" in html
    assert "Version 4 applies to new customers since" in html
    assert 'class="anchor"' in html  # headings can be linked


def test_headings_have_stable_anchors_in_the_table_of_contents(demo_client):
    html = demo_client.get("/documents/dpa/").get_data(as_text=True)
    toc = html.split('<nav class="toc"')[1].split("</nav>")[0]
    first_anchor = toc.split('href="#')[1].split('"')[0]
    assert f'id="{first_anchor}"' in html


def test_archive_lists_all_versions_newest_first(demo_client):
    html = demo_client.get("/documents/privacy-policy/versions/").get_data(as_text=True)
    assert html.index("Version 4") < html.index("Version 1")
    assert "Upcoming" in html and "In effect" in html


def test_an_old_version_says_it_is_superseded(demo_client):
    html = demo_client.get("/documents/privacy-policy/versions/1").get_data(as_text=True)
    assert "This version was in effect from" in html


def test_compare_shows_summary_and_redline(demo_client):
    page = demo_client.get("/documents/privacy-policy/compare?from=2&to=3")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Summary of changes" in html
    assert "<ins>" in html and "<del>" in html
    assert 'class="redline"' in html


def test_compare_side_by_side(demo_client):
    html = demo_client.get("/documents/privacy-policy/compare?from=2&to=3&view=side").get_data(as_text=True)
    assert 'class="side-by-side"' in html
    assert 'aria-current="page">Side by side' in html


def test_compare_defaults_to_the_upcoming_change(demo_client):
    html = demo_client.get("/documents/privacy-policy/compare").get_data(as_text=True)
    assert "from version 3 to version 4" in html


def test_compare_backwards_redirects_to_forwards(demo_client):
    page = demo_client.get("/documents/privacy-policy/compare?from=3&to=1")
    assert page.status_code == 302
    assert "from=1" in page.headers["Location"] and "to=3" in page.headers["Location"]


def test_comparing_a_version_with_itself_is_a_friendly_page_with_ways_on(demo_client):
    page = demo_client.get("/documents/privacy-policy/compare?from=2&to=2&view=side")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "version 2 compared with itself" in html
    assert "/documents/privacy-policy/compare?from=1&amp;to=2&amp;view=side" in html
    assert "/documents/privacy-policy/compare?from=2&amp;to=3&amp;view=side" in html
    assert "/documents/privacy-policy/versions/2" in html
    # A version with nothing before it offers only the next comparison.
    first = demo_client.get("/documents/privacy-policy/compare?from=1&to=1").get_data(as_text=True)
    assert "compare?from=1&amp;to=2" in first and "to=1&amp;" not in first


def test_the_summary_counts_words_in_the_singular_and_plural(demo_client):
    html = demo_client.get("/documents/privacy-policy/compare?from=2&to=3").get_data(as_text=True)
    assert re.search(r"\d+ words added, \d+ words removed, in \d+ passages\.", html)


def test_one_word_reads_in_the_singular_and_the_page_shows_the_stored_redline(client, policy_document):
    document = policy_document
    publish_version(document, "# Policy\n\nWe collect your name.\n", -30)
    publish_version(document, "# Policy\n\nWe collect your **full** name.\n\n- Hosting\n", -10)
    db.session.commit()
    html = client.get("/documents/privacy-policy/compare?from=1&to=2").get_data(as_text=True)
    assert "2 words added, 0 words removed, in 2 passages." in html
    assert "<ins><strong>full</strong></ins><ins> </ins>name." in html
    assert 'href="/static/css/redline.css"' in html
    publish_version(document, "# Policy\n\nWe collect your **full** name.\n\n- Hosting\n\nMore.\n", -5)
    db.session.commit()
    html = client.get("/documents/privacy-policy/compare?from=2&to=3").get_data(as_text=True)
    assert "1 word added, 0 words removed, in 1 passage." in html


def test_unified_diff_download(demo_client):
    response = demo_client.get("/documents/privacy-policy/compare/1-3.diff")
    assert response.status_code == 200
    assert response.content_type == "text/x-diff; charset=utf-8"
    text = response.get_data(as_text=True)
    assert text.startswith("---") and "\n+++" in text and "\n@@" in text


@pytest.mark.parametrize(("path", "status"), [
    ("/documents/nope/", 404),
    ("/documents/privacy-policy/versions/99", 404),
    ("/documents/privacy-policy/compare?from=1&to=99", 404),
    ("/documents/privacy-policy/compare?from=2&to=99", 404),
    ("/documents/privacy-policy/compare?from=x&to=2", 400),
    ("/documents/privacy-policy/compare?from=1&to=99999999999999999999", 400),
    ("/documents/privacy-policy/compare?view=fancy", 400),
    ("/documents/privacy-policy/compare/3-1.diff", 404),
])
def test_bad_document_requests(demo_client, path, status):
    page = demo_client.get(path)
    assert page.status_code == status
    assert "Traceback" not in page.get_data(as_text=True)
