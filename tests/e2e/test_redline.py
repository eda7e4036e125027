"""The redline in the browser: formatting, tables, moves and look-alike letters, at 1280 and 360 px."""

from __future__ import annotations

import pytest

from registry.domain.diff import compare
from tests.e2e.conftest import DESKTOP, PHONE, describe_violations

pytestmark = pytest.mark.e2e

DEMO = "/documents/privacy-policy/compare?from=2&to=3"

MOVED_OLD = """# Terms

## 1. Scope

These terms govern the Service.

## 2. Security

We encrypt all personal data at rest and in transit.

We test our systems every year.

## 3. Liability

Our liability is limited to the fees paid.

It excludes indirect damages.

## 4. Hosting

Data is stored by Cloudvault in Frankfurt.
"""
MOVED_NEW = """# Terms

## 1. Scope

These terms govern the Service.

## 3. Liability

Our liability is limited to the fees paid.

It excludes indirect damages.

## 4. Hosting

Data is stored by \u0421loudvault in Frankfurt.

## 2. Security

We encrypt all personal data at rest and in transit.

We test our systems every year.
"""


def sample_page(body: str) -> str:
    """A page of the site's own layout and stylesheets around a comparison's HTML."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Redline sample</title>"
        '<link rel="stylesheet" href="/static/css/site.css">'
        '<link rel="stylesheet" href="/static/css/redline.css"></head>'
        f'<body><main class="container"><h1>Redline sample</h1><div class="comparison">{body}</div>'
        "</main></body></html>"
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_demo_redline_reads_as_the_document(new_page, axe, viewport):
    page = new_page(viewport=viewport, bypass_csp=True)
    assert page.goto(DEMO).status == 200
    comparison = page.locator(".comparison")
    assert "**" not in comparison.inner_text()
    assert "| " not in comparison.inner_text()
    # The table of purposes is a table, its new row marked inserted.
    inserted_row = comparison.locator("table tr.inserted")
    assert inserted_row.count() == 1
    assert "AI Meeting Notes" in inserted_row.inner_text()
    assert comparison.locator("strong").count() > 0
    assert comparison.locator("ul.items > li").count() > 0
    violations = axe(page)
    assert not violations, describe_violations(violations)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_side_by_side_stacks_old_above_new_on_phones(new_page, axe, viewport):
    page = new_page(viewport=viewport, bypass_csp=True)
    assert page.goto(DEMO + "&view=side").status == 200
    row = page.locator(".side-by-side > tbody > tr.changed").first
    old_box = row.locator("td").nth(0).bounding_box()
    new_box = row.locator("td").nth(1).bounding_box()
    assert old_box and new_box
    if viewport is PHONE:
        assert new_box["y"] >= old_box["y"] + old_box["height"] - 1  # new below old
        assert new_box["width"] > 250  # not a 120 px column
    else:
        assert abs(new_box["y"] - old_box["y"]) < 1 and new_box["x"] > old_box["x"]
    violations = axe(page)
    assert not violations, describe_violations(violations)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("view", ["redline", "side"])
def test_a_moved_section_and_a_look_alike_letter(new_page, axe, live_server, viewport, view):
    result = compare(MOVED_OLD, MOVED_NEW, old_label="Version 1", new_label="Version 2")
    body = result.redline_html if view == "redline" else result.side_by_side_html
    page = new_page(viewport=viewport, bypass_csp=True)
    page.goto(live_server + "/static/css/redline.css")  # same origin for the stylesheets
    page.set_content(sample_page(body))
    page.wait_for_load_state("load")
    notes = page.locator(".move-note")
    assert notes.count() == 2
    assert notes.nth(0).inner_text() == "Section moved to after \u00a7\u00a04"
    assert notes.nth(1).inner_text() == "Section moved from after \u00a7\u00a01"
    # The link at the old place leads to the new place.
    if view == "redline":
        notes.nth(0).locator("a").click()
        assert page.evaluate("location.hash") == "#move-1-new"
    lookalike = page.locator(".lookalike").first
    assert lookalike.is_visible()
    assert "Cyrillic, not Latin C" in lookalike.inner_text()
    # Moved text is drawn with a double line, unlike deleted text.
    style = page.evaluate("getComputedStyle(document.querySelector('del.moved')).textDecorationStyle")
    assert style == "double"
    violations = axe(page)
    assert not violations, describe_violations(violations)


def test_a_format_change_is_labelled_in_the_browser(new_page, live_server):
    old = "We keep Account data for two years. See [the DPA](https://example.com/dpa).\n"
    new = "We keep **Account data** for two years. See [the DPA](https://example.com/dpa-2026).\n"
    page = new_page(bypass_csp=True)
    page.goto(live_server + "/static/css/redline.css")
    page.set_content(sample_page(compare(old, new).redline_html))
    page.wait_for_load_state("load")
    labels = page.locator(".format-note").all_inner_texts()
    assert labels == ["\u27e8now bold\u27e9", "\u27e8link changed to https://example.com/dpa-2026\u27e9"]
    assert page.locator(".format-change strong").inner_text() == "Account data"
