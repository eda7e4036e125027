"""What visitors do in the browser: filter the list, read an entry's history, compare versions,
move around with the keyboard, and print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

ROWS = "#subprocessor-table tbody tr"


def visible_names(page: Page) -> list[str]:
    return page.locator(f"{ROWS}:visible th a").all_inner_texts()


def test_list_filters_instantly_and_without_javascript(new_page):
    page = new_page()
    page.goto("/subprocessors/")
    count = page.locator("#result-count")
    expect(page.locator(f"{ROWS}:visible")).to_have_count(17)
    expect(count).to_contain_text("17 sub-processors.")

    page.evaluate("window.notReloaded = true")
    page.fill("#q", "assistant")
    expect(count).to_contain_text("match your filters")
    searched = visible_names(page)
    assert "Cortexa AI" in searched and not any(name.startswith("Nordlicht") for name in searched)
    assert 0 < len(searched) < 17
    expect(count).to_contain_text(f"{len(searched)} sub-processor{'s' if len(searched) != 1 else ''} "
                                  "match your filters.")
    assert page.evaluate("window.notReloaded === true"), "typing must filter in place, not reload"
    assert page.url.endswith("/subprocessors/?q=assistant"), "the address follows the filter"

    page.fill("#q", "")
    page.select_option("#purpose", "Payments")
    rows = page.locator(f"{ROWS}:visible")
    purposes = {row.get_attribute("data-purpose") for row in rows.all()}
    assert purposes == {"Payments"}
    assert any(name.startswith("Quayside") for name in visible_names(page))
    expect(count).to_contain_text(f"{rows.count()} sub-processor")

    page.fill("#q", "assistant")
    page.select_option("#purpose", "AI features")
    instant = visible_names(page)

    static = new_page(java_script_enabled=False)
    static.goto("/subprocessors/")
    static.fill("#q", "assistant")
    static.select_option("#purpose", "AI features")
    static.get_by_role("button", name="Apply").click()
    static.wait_for_url(re.compile(r"q=assistant&purpose=AI\+features"))
    expect(static.locator("#q")).to_have_value("assistant")
    expect(static.locator("#purpose")).to_have_value("AI features")
    served = static.locator(f"{ROWS} th a").all_inner_texts()
    assert served == instant, "the server and the instant filter must agree"
    expect(static.locator("#result-count")).to_contain_text(
        f"{len(served)} sub-processor{'s' if len(served) != 1 else ''} match your filters.")
    assert {row.get_attribute("data-purpose") for row in static.locator(ROWS).all()} == {"AI features"}


def test_entry_history_opens_from_the_list(page):
    page.goto("/subprocessors/")
    page.get_by_role("link", name="Clearsight Analytics").click()
    page.wait_for_url("**/subprocessors/metricula")
    expect(page.locator("main > h1")).to_have_text("Clearsight Analytics")

    items = page.locator(".history-item")
    expect(items).to_have_count(2)
    expect(items.first).to_be_visible()
    expect(items.first.locator(".tag")).to_have_text("Changed")
    expect(items.last.locator(".tag")).to_have_text("Added")

    table = items.first.locator("table.field-changes")
    expect(table).to_be_visible()
    expect(table.locator("tbody th")).to_have_text(["Name", "Legal entity", "Contact", "Website"])
    name_row = table.locator("tbody tr").first
    expect(name_row.locator("del")).to_have_text("Metricula")
    expect(name_row.locator("ins")).to_have_text("Clearsight Analytics")


def test_compare_two_document_versions(page):
    page.goto("/documents/privacy-policy/versions/")
    page.select_option("#from", "2")
    page.select_option("#to", "3")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"/documents/privacy-policy/compare\?from=2&to=3"))
    expect(page.locator("main > h1")).to_have_text(
        "Privacy Policy: what changed from version 2 to version 3")

    summary = page.locator(".summary")
    expect(summary.get_by_role("heading", name="Summary of changes")).to_be_visible()
    expect(summary.locator(".stats")).to_have_text(
        re.compile(r"^\d+ words added, \d+ words removed, in \d+ passages?\.$"))
    redline = page.locator(".comparison .redline")
    expect(redline.locator("ins:visible").first).to_be_visible()
    expect(redline.locator("del:visible").first).to_be_visible()

    switch = page.get_by_role("navigation", name="Comparison view")
    expect(switch.get_by_role("link", name="Redline")).to_have_attribute("aria-current", "page")
    switch.get_by_role("link", name="Side by side").click()
    page.wait_for_url(re.compile(r"view=side"))
    side = page.locator(".comparison table.side-by-side")
    expect(side).to_be_visible()
    expect(side.locator("ins").first).to_be_visible()
    expect(switch.get_by_role("link", name="Side by side")).to_have_attribute("aria-current", "page")
    expect(page.locator("#from")).to_have_value("2")
    expect(page.locator("#to")).to_have_value("3")

    switch.get_by_role("link", name="Redline").click()
    page.wait_for_url(re.compile(r"view=redline"))
    expect(page.locator(".comparison .redline")).to_be_visible()
    expect(page.locator(".comparison table.side-by-side")).to_have_count(0)

    with page.expect_download() as info:
        switch.get_by_role("link", name="Download diff of the source").click()
    download = info.value
    assert download.suggested_filename == "privacy-policy-v2-v3.diff"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("---")
    assert "\n+++ " in text and "\n@@ " in text


FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), id: el.id, cls: el.className, text: el.textContent.trim(),
          inMain: el.closest('main') !== null, inNav: el.closest('header nav') !== null,
          outlineStyle: style.outlineStyle, outlineWidth: style.outlineWidth,
          left: el.getBoundingClientRect().left, top: el.getBoundingClientRect().top};
}"""


def test_keyboard_skip_link_nav_and_focus_indicator(page):
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.evaluate(FOCUSED)
    assert skip["cls"] == "skip-link" and skip["text"] == "Skip to content"
    assert skip["left"] >= 0 and skip["top"] >= 0, "the focused skip link must be on screen"
    assert skip["outlineStyle"] != "none"

    page.keyboard.press("Enter")
    page.wait_for_url("**/#main")
    assert page.evaluate(FOCUSED)["id"] == "main"
    page.keyboard.press("Tab")
    after_skip = page.evaluate(FOCUSED)
    assert after_skip["inMain"] and after_skip["text"] == "Sub-processors", after_skip

    page.goto("/documents/")
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate(FOCUSED))
    assert [f["cls"] for f in focused[:2]] == ["skip-link", "brand"]
    nav = [f for f in focused if f["inNav"]]
    assert [f["text"] for f in nav] == ["Sub-processors", "Legal documents", "Upcoming changes",
                                        "Change log"]
    for link in nav:
        assert link["outlineStyle"] not in ("none", "") and link["outlineWidth"] != "0px", link


def test_print_hides_navigation_and_filters(page):
    page.goto("/documents/privacy-policy/")
    nav = page.locator(".site-header nav")
    expect(nav).to_be_visible()
    page.emulate_media(media="print")
    expect(nav).to_be_hidden()
    expect(page.locator(".doc-meta ul.plain")).to_be_hidden()
    expect(page.locator("article.prose h1")).to_be_visible()
    expect(page.locator(".site-footer")).to_be_hidden()

    page.emulate_media(media="screen")
    page.goto("/documents/privacy-policy/compare?from=2&to=3")
    filters, switch = page.locator("form.filters"), page.locator(".view-switch")
    expect(filters).to_be_visible()
    page.emulate_media(media="print")
    expect(filters).to_be_hidden()
    expect(switch).to_be_hidden()
    expect(page.locator(".site-header nav")).to_be_hidden()
    expect(page.locator(".comparison ins").first).to_be_visible()
