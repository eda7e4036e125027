"""What a customer reads (issue 11): search that finds, an as-of date that waits for a whole date, the
address and the CSV link following the filters, announced changes in the list, country names, dates
that say their time and zone, and a document whose contents fold on a phone. Each leaves a screenshot
in tests/e2e/artifacts/."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, PHONE

pytestmark = pytest.mark.e2e

ROWS = "#subprocessor-table tbody tr"


def visible_names(page: Page) -> list[str]:
    return page.locator(f"{ROWS}:visible th a").all_inner_texts()


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.mark.parametrize(("typed", "expected", "absent"), [
    ("Germany", "Nordlicht Cloud", "Quayside Payments"),
    ("Postbrucke", "Postbrücke Mail", "Nordlicht Cloud"),
    ("united sta", "Cortexa AI", "Nordlicht Cloud"),
])
def test_search_finds_country_names_prefixes_and_ignores_accents(new_page, typed, expected, absent):
    page = new_page()
    page.goto("/subprocessors/")
    page.fill("#q", typed)
    expect(page.locator("#result-text")).to_contain_text("your filters")
    names = visible_names(page)
    assert expected in names and absent not in names, names
    # The server finds the same entries as the script.
    served = new_page(java_script_enabled=False)
    served.goto(page.url)
    assert served.locator(f"{ROWS} th a").all_inner_texts() == names


def test_a_code_matches_whole_words_only(page):
    page.goto("/subprocessors/")
    page.fill("#q", "AI")
    names = visible_names(page)
    assert "Cortexa AI" in names
    assert not any(name.startswith("Ledgerfield") for name in names)
    page.fill("#q", "US")
    us = visible_names(page)
    page.fill("#q", "")
    page.select_option("#country", "US")
    assert visible_names(page) == us


def test_the_address_and_the_csv_link_follow_the_filters_and_nothing_matching_is_said(page):
    page.goto("/subprocessors/")
    page.fill("#q", "germ")
    page.select_option("#purpose", "Hosting and infrastructure")
    expect(page).to_have_url(re.compile(r"q=germ"))
    assert query_of(page.url) == {"q": ["germ"], "purpose": ["Hosting and infrastructure"]}
    csv = page.locator("#csv-link")
    assert query_of(csv.get_attribute("href")) == query_of(page.url)
    assert urlsplit(csv.get_attribute("href")).path == "/subprocessors/export.csv"
    expect(page.locator("#no-match")).to_be_hidden()

    page.fill("#q", "zzzz")
    expect(page.locator(f"{ROWS}:visible")).to_have_count(0)
    expect(page.locator("#no-match")).to_be_visible()
    expect(page.locator("#result-text")).to_have_text("0 sub-processors match your filters.")
    assert query_of(csv.get_attribute("href"))["q"] == ["zzzz"]

    page.fill("#q", "Postbrucke")
    page.select_option("#purpose", "")
    expect(page.locator("#result-text")).to_have_text("1 sub-processor matches your filters.")
    page.fill("#q", "")
    expect(page).to_have_url(re.compile(r"/subprocessors/$"))
    assert csv.get_attribute("href") == "/subprocessors/export.csv"


def test_the_as_of_date_waits_for_a_whole_date(page):
    page.goto("/subprocessors/")
    page.evaluate("window.notReloaded = true")
    as_of = page.locator("#as_of")
    expect(as_of).to_have_attribute("type", "text")
    expect(page.locator("#as_of-hint")).to_contain_text("Year-month-day")
    # Typed as a European would: nothing is sent, whatever the digits so far look like.
    as_of.press_sequentially("01012025", delay=20)
    assert page.evaluate("window.notReloaded === true")
    assert "as_of" not in page.url
    as_of.fill("")
    with page.expect_navigation():
        as_of.press_sequentially("2025-01-01", delay=20)
    assert query_of(page.url)["as_of"] == ["2025-01-01"]
    expect(page.locator("h1")).to_contain_text("as of 1 January 2025")


def test_a_date_that_cannot_be_read_is_shown_beside_its_field(page):
    page.goto("/subprocessors/")
    page.fill("#as_of", "2025-13-45")
    with page.expect_navigation() as navigation:
        page.press("#as_of", "Enter")
    assert navigation.value.status == 400
    assert page.title().startswith("Error: ")
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_contain_text("As of date")
    expect(page.locator("#as_of-error")).to_contain_text("YYYY-MM-DD")
    expect(page.locator("#as_of")).to_have_value("2025-13-45")
    expect(page.locator("#as_of")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"{ROWS}")).to_have_count(17)  # the list is still there


def test_announced_changes_are_in_the_list_and_can_be_hidden(page):
    page.goto("/subprocessors/")
    kestrel = page.locator(ROWS, has_text="Kestrel")
    expect(kestrel.locator(".tag-coming")).to_contain_text(re.compile(r"Joins on \d{1,2} \w+ \d{4}"))
    page.select_option("#announced", "hide")
    page.wait_for_url(re.compile(r"announced=hide"))
    expect(page.locator(ROWS, has_text="Kestrel")).to_have_count(0)
    expect(page.locator(".tag-coming")).to_have_count(0)


def test_the_entry_history_and_the_comparison_name_countries(page):
    page.goto("/subprocessors/bastionet")
    history = page.locator("#history + ol")
    expect(history).to_contain_text("Singapore")
    expect(history.locator("ins").first).to_contain_text("United States")
    page.goto("/subprocessors/compare")
    expect(page.locator("#from")).to_have_attribute("type", "text")
    expect(page.locator("#from")).to_have_value(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    expect(page.locator("main")).to_contain_text("Singapore")


def test_change_lines_use_current_names_and_notice_times(page):
    page.goto("/changes")
    expect(page.locator("main")).to_contain_text("Metricula, now Clearsight Analytics, updated")
    page.goto("/upcoming")
    given = page.locator(".dates div", has_text="Notice given").locator("dd").first
    expect(given).to_have_text(re.compile(r"\d{1,2} \w+ \d{4}, \d{2}:\d{2} CES?T"))
    page.goto("/")
    assert page.title().count("Trust Center") == 1
    # The announced change (in effect on 13 December) is under "Upcoming", not under "Recent changes".
    expect(page.locator("#recent-heading ~ ol.timeline")).not_to_contain_text("SMS two-step verification")
    expect(page.locator("main")).to_contain_text("SMS two-step verification")


def test_the_contents_fold_on_a_phone_and_are_not_numbered_twice(new_page):
    phone = new_page(viewport=PHONE)
    phone.goto("/documents/privacy-policy/")
    fold = phone.locator(".toc-fold")
    expect(fold).not_to_have_attribute("open", "")
    # Folded, the contents are one line: the document no longer starts below the whole list (issue 11:
    # about 880 px down). What still comes first is the page's own news: the announced version's
    # notice with how to object, and the feed link (about 850 px in the demo).
    folded = fold.bounding_box()["height"]
    assert folded < 60, f"the folded contents take {folded:.0f} px"
    heading_top = phone.locator("article.document h1, article.document h2").first.bounding_box()["y"]
    fold_bottom = fold.bounding_box()["y"] + folded
    assert heading_top - fold_bottom < 80, "the document starts right after the contents line"
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=ARTIFACTS / "document-phone-first-screen.png")  # what a phone shows first
    phone.locator(".toc-fold summary").click()
    expect(fold.locator("a").first).to_be_visible()

    desktop = new_page()
    desktop.goto("/documents/privacy-policy/")
    expect(desktop.locator(".toc-fold")).to_have_attribute("open", "")
    first = desktop.locator(".toc-fold a").first
    box = first.bounding_box()
    assert box["height"] >= 24, box
    # The headings carry their own numbers; the list adds none.
    marker = desktop.evaluate(
        "getComputedStyle(document.querySelector('.toc-fold li')).listStyleType")
    assert marker == "none"
