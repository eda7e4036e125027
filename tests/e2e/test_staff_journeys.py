"""Legal staff in the browser: an editor drafts, an approver is refused a date one day too early and then
schedules at the earliest allowed one; the public upcoming page shows it. Every staff page is screenshotted
and checked with axe-core."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

import pyotp
import pytest
from playwright.sync_api import Page, expect

from registry.services.demo import STAFF
from tests.e2e.conftest import ARTIFACTS, describe_violations

pytestmark = pytest.mark.e2e

ACCOUNTS = {email: (password, secret) for email, _role, password, secret in STAFF}
EDITOR = "editor@ferncastle.example"
APPROVER = "approver@ferncastle.example"
TITLE = "Spring privacy update and a new SMS vendor"


def log_in(page: Page, email: str) -> None:
    password, secret = ACCOUNTS[email]
    page.goto("/auth/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    if secret is None:
        page.wait_for_url("**/admin/")
        return
    page.wait_for_url("**/auth/two-factor")
    for _attempt in range(3):
        page.fill("#code", pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Verify").click()
        page.wait_for_load_state()
        if "/auth/two-factor" not in page.url:
            break
        # Another test used this 30-second code already: a code is never accepted twice.
        time.sleep(31 - time.time() % 30)
    page.wait_for_url("**/admin/")


def check(page: Page, axe, name: str) -> None:
    """Screenshot the staff page as it is now and require zero axe-core violations."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"admin-{name}.png", full_page=True)
    violations = axe(page)
    assert not violations, f"{name}: " + describe_violations(violations)


def test_draft_approve_refuse_too_early_then_schedule_at_the_earliest(new_page, axe):
    # The editor works in a context with the site's Content-Security-Policy enforced, so the live
    # preview must run under it; axe needs its own script injected, so a second context bypasses it.
    editor = new_page()
    log_in(editor, EDITOR)
    editor.get_by_role("link", name="New change set").first.click()
    editor.get_by_role("button", name="Create change set").click()
    expect(editor.locator(".field-error").first).to_contain_text("Give the change set a title.")
    editor.fill("#title", TITLE)
    editor.fill("#summary", "We now send login codes by SMS through a new provider, and say so in the "
                            "privacy policy.")
    editor.check("#materiality-0")
    editor.get_by_role("button", name="Create change set").click()
    expect(editor.locator("main > h1")).to_contain_text(TITLE)
    change_set_url = editor.url
    change_set_id = int(change_set_url.rsplit("/", 1)[1])

    editor.get_by_role("link", name="Privacy Policy").click()
    source = editor.locator("#source")
    expect(source).not_to_have_value("")
    source.press("Control+End")
    source.type("\n\n## SMS codes\n\nWe send one-time login codes by SMS through Smsline.")
    expect(editor.locator("#preview-status")).to_contain_text("Preview updated", timeout=10_000)
    expect(editor.locator("#preview-html h2").last).to_contain_text("SMS codes")
    expect(editor.locator("#preview-redline ins").first).to_be_visible()
    editor.fill("#summary", "Explains the SMS codes for two-step login.")
    editor.get_by_role("button", name="Save version").click()
    editor.wait_for_url(change_set_url)

    editor.get_by_role("link", name="Add a new sub-processor").click()
    fields = {"#slug": "smsline", "#name": "Smsline", "#legal_entity": "Smsline Sp. z o.o.",
              "#address": "ul. Prosta 1, 00-001 Warszawa, Poland", "#contact": "privacy@smsline.example",
              "#purpose": "SMS delivery", "#data_categories": "Phone number, Login codes", "#countries": "PL",
              "#transfer_mechanism": "Within the EEA", "#website": "https://smsline.example",
              "#summary": "Smsline sends one-time login codes by SMS."}
    for selector, value in fields.items():
        editor.fill(selector, value)
    editor.fill("#countries", "PL, Narnia")
    editor.get_by_role("button", name="Save in this change set").click()
    expect(editor.locator("#countries-error")).to_contain_text("Not ISO 3166 country codes: Narnia")
    editor.fill("#countries", "PL")
    editor.get_by_role("button", name="Save in this change set").click()
    editor.wait_for_url(change_set_url)
    expect(editor.locator(".item")).to_have_count(2)
    editor.get_by_role("button", name="Submit for review").click()
    expect(editor.locator(".flash-success")).to_contain_text("Submitted for review.")

    # Every page the editor used, checked for accessibility in a second session.
    auditor = new_page(bypass_csp=True)
    log_in(auditor, EDITOR)
    base = f"/admin/change-sets/{change_set_id}"
    for name, url in [("dashboard", "/admin/"), ("change-sets", "/admin/change-sets/"),
                      ("new-change-set", "/admin/change-sets/new"), ("change-set", base),
                      ("edit-change-set", f"{base}/edit"),
                      ("document-editor", f"{base}/documents/privacy-policy"),
                      ("add-subprocessor", f"{base}/subprocessors/new"),
                      ("edit-subprocessor", f"{base}/subprocessors/smsline"),
                      ("remove-subprocessor", f"{base}/subprocessors/nordlicht-cloud/remove")]:
        auditor.goto(url)
        expect(auditor.locator("main > h1")).to_be_visible()
        if name == "document-editor":
            expect(auditor.locator("#preview-status")).to_contain_text("Preview updated", timeout=10_000)
        if name == "add-subprocessor":  # the chain's blank rows, and one more from the button
            auditor.get_by_role("button", name="Add a row").click()
            expect(auditor.locator("#chain-3-name")).to_be_focused()
            expect(auditor.locator("[data-chain-row] legend").last).to_have_text("Sub-processor 4")
        check(auditor, axe, name)
    auditor.goto("/admin/change-sets/new")
    auditor.get_by_role("button", name="Create change set").click()
    expect(auditor.locator(".field-error").first).to_be_visible()
    check(auditor, axe, "new-change-set-errors")

    approver = new_page(bypass_csp=True)
    log_in(approver, APPROVER)
    approver.goto(base)
    approver.get_by_role("button", name="Approve").click()
    expect(approver.locator(".flash-success")).to_contain_text("Approved")
    approver.get_by_role("link", name="Schedule…").click()
    earliest_day = date.fromisoformat(approver.locator("#effective_date").input_value())
    expect(approver.locator("#effective_time")).to_have_value("00:00")
    # A new sub-processor: the 14 calendar days of the sub-processor list govern.
    assert earliest_day >= date.today() + timedelta(days=14)
    check(approver, axe, "schedule")

    approver.fill("#effective_date", (earliest_day - timedelta(days=1)).isoformat())
    approver.get_by_role("button", name="Schedule and start the notice").click()
    error = approver.locator("#effective_date-error")
    expect(error).to_contain_text("the earliest allowed effective date is")
    expect(error).to_contain_text(f"{earliest_day.day} {earliest_day:%B %Y}, 00:00")
    check(approver, axe, "schedule-refused")

    approver.fill("#effective_date", earliest_day.isoformat())
    approver.get_by_role("button", name="Schedule and start the notice").click()
    approver.wait_for_url(re.compile(rf"/admin/change-sets/{change_set_id}$"))
    expect(approver.locator(".flash-success")).to_contain_text("Scheduled")
    expect(approver.locator(".timeline")).to_contain_text("approved → scheduled")
    check(approver, axe, "change-set-scheduled")
    approver.goto("/admin/")
    expect(approver.locator("main")).to_contain_text(TITLE)
    check(approver, axe, "dashboard-approver")

    visitor = new_page()
    visitor.goto("/upcoming")
    change = visitor.locator("article.change", has_text=TITLE)
    expect(change).to_be_visible()
    expect(change).to_contain_text("Smsline")
    expect(change).to_contain_text("Privacy Policy")
    expect(change.locator("time").first).to_be_visible()


def test_the_editor_preview_works_without_javascript(new_page):
    page = new_page(java_script_enabled=False)
    log_in(page, EDITOR)
    page.get_by_role("link", name="New change set").first.click()
    page.fill("#title", "Cookie wording")
    page.fill("#summary", "Clearer wording.")
    page.check("#materiality-1")
    page.get_by_role("button", name="Create change set").click()
    page.get_by_role("link", name="Cookie Policy").click()
    page.fill("#source", "# Cookie Policy\n\nWe use **only** necessary cookies.<script>alert(1)</script>")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-html strong")).to_have_text("only")
    expect(page.locator("#preview-html")).to_contain_text("<script>alert(1)</script>")  # shown as text
    expect(page.locator("#preview-html script")).to_have_count(0)
    expect(page.locator("#preview-redline del").first).to_be_visible()
    # Nothing was stored: the change set still has no items.
    page.get_by_role("link", name=re.compile("Change set #")).click()
    expect(page.locator(".empty").first).to_have_text("This change set is empty.")
