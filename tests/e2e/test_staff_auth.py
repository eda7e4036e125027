"""Staff sign-in in Chromium: password, TOTP code, the staff area, logout; admin pages; axe-core clean."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from registry.services.demo import STAFF
from tests.e2e.conftest import ARTIFACTS, describe_violations

pytestmark = pytest.mark.e2e

ACCOUNTS = {email: (password, secret) for email, _role, password, secret in STAFF}
APPROVER = "approver@ferncastle.example"
ADMIN = "admin@ferncastle.example"


def accessible(axe, page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"staff-{name}.png", full_page=True)
    violations = axe(page)
    if violations:
        pytest.fail(f"{name}: " + describe_violations(violations), pytrace=False)


def enter_code(page: Page, secret: str) -> None:
    """Type the current code; if another test already used this 30 s step, wait for the next one."""
    totp = pyotp.TOTP(secret)
    for _attempt in range(2):
        page.get_by_label("6-digit code").fill(totp.now())
        page.get_by_role("button", name="Verify").click()
        if "/auth/two-factor" not in page.url:
            return
        expect(page.get_by_role("alert")).to_contain_text("already used")
        time.sleep(30 - time.time() % 30 + 1)
    pytest.fail("the two-factor code was refused twice")


def sign_in(page: Page, email: str, *, axe=None) -> None:
    password, secret = ACCOUNTS[email]
    page.goto("/auth/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff log in")
    if axe:
        accessible(axe, page, "login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    assert "/auth/two-factor" in page.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your two-factor code")
    if axe:
        accessible(axe, page, "two-factor")
    enter_code(page, secret)


def test_approver_signs_in_with_totp_and_out_again(new_page, axe):
    page = new_page(bypass_csp=True)
    page.goto("/auth/login")
    page.get_by_label("Email address").fill(APPROVER)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    accessible(axe, page, "login-failed")

    sign_in(page, APPROVER, axe=axe)
    nav = page.get_by_role("navigation", name="Staff")
    expect(nav).to_contain_text(APPROVER)
    expect(nav.get_by_role("link", name="Audit log")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)  # admins only

    nav.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    expect(page.locator("table.audit")).to_contain_text("auth.login.success")
    expect(page.locator("table.audit")).to_contain_text("auth.login.failed")
    accessible(axe, page, "audit-log")

    nav.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff log in")
    expect(page.get_by_role("status")).to_contain_text("logged out")
    page.goto("/admin/audit/")
    assert "/auth/login" in page.url  # the server-side session is gone


def test_admin_pages(new_page, axe):
    page = new_page(bypass_csp=True)
    sign_in(page, ADMIN)
    page.goto("/admin/users/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    expect(page.locator("table")).to_contain_text("editor@ferncastle.example")
    accessible(axe, page, "users")

    page.get_by_label("Email address").fill("new.editor@ferncastle.example")
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#new-link")).to_contain_text("/auth/set-password/")
    accessible(axe, page, "users-created")

    page.goto("/admin/policies/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Notice policies")
    accessible(axe, page, "policies")
    page.get_by_role("link", name="Edit Privacy Policy").click()
    page.get_by_label("Holiday calendars").fill("PL, XX")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator(".field-error")).to_contain_text("unknown holiday calendar 'XX'")
    accessible(axe, page, "policy-edit-error")
