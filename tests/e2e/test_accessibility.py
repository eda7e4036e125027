"""axe-core on every public page, at desktop width and at 360 px, and no sideways scrolling on phones."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.e2e.conftest import AXE_TAGS, DESKTOP, PHONE, describe_violations

pytestmark = pytest.mark.e2e

HUNDRED_DAYS_AGO = (date.today() - timedelta(days=100)).isoformat()

PAGES = {
    "home": ("/", 200),
    "upcoming": ("/upcoming", 200),
    "changes": ("/changes", 200),
    "subprocessors": ("/subprocessors/", 200),
    "subprocessors-as-of": (f"/subprocessors/?as_of={HUNDRED_DAYS_AGO}", 200),
    "entry": ("/subprocessors/metricula", 200),
    "entry-with-chain": ("/subprocessors/nordlicht-cloud", 200),
    "removed-entry": ("/subprocessors/lettermint", 200),
    "subprocessors-compare": (f"/subprocessors/compare?from={HUNDRED_DAYS_AGO}", 200),
    "documents": ("/documents/", 200),
    "document": ("/documents/privacy-policy/", 200),
    "versions": ("/documents/privacy-policy/versions/", 200),
    "redline": ("/documents/privacy-policy/compare?from=2&to=3", 200),
    "side-by-side": ("/documents/privacy-policy/compare?from=2&to=3&view=side", 200),
    "compare-same": ("/documents/privacy-policy/compare?from=2&to=2", 200),
    "dpa": ("/documents/dpa/", 200),
    "cookie-policy": ("/documents/cookie-policy/", 200),  # a five-column table
    "not-found": ("/subprocessors/no-such-company", 404),
    "subprocessors-announced-hidden": ("/subprocessors/?announced=hide&sort=added", 200),
    "subprocessors-filter-error": ("/subprocessors/?as_of=2025-13-45&country=XX", 400),
    "subprocessors-compare-error": ("/subprocessors/compare?from=2025-02-30", 400),
    "subscribe": ("/subscriptions/", 200),
}
# Public pages are held to WCAG 2.2 AA as well: its target size (2.5.8) for small links.
PUBLIC_TAGS = [*AXE_TAGS, "wcag22aa"]

# Wide content scrolls inside these boxes; everything else must fit the phone's width.
SCROLLERS = ".table-scroll, .comparison"

OVERFLOWING = """scrollers => {
  const width = document.documentElement.clientWidth;
  const inside = el => el.closest(scrollers) !== null && !el.matches(scrollers);
  return Array.from(document.body.querySelectorAll('*'))
    .filter(el => !inside(el) && el.getBoundingClientRect().right > width + 0.5)
    .slice(0, 10)
    .map(el => [el.tagName.toLowerCase(), ...el.classList].join('.')
               + ' right=' + Math.round(el.getBoundingClientRect().right));
}"""


@pytest.mark.parametrize("width", ["desktop", "phone"])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_is_accessible(axe, new_page, name, width):
    path, status = PAGES[name]
    page = new_page(viewport=DESKTOP if width == "desktop" else PHONE, bypass_csp=True)
    response = page.goto(path)
    assert response is not None and response.status == status
    assert page.locator("h1:visible").count() == 1

    violations = axe(page, PUBLIC_TAGS)
    if violations:
        pytest.fail(describe_violations(violations), pytrace=False)

    if width == "phone":
        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, (
            f"{path} scrolls sideways at {inner_width} px (document is {scroll_width} px wide); "
            f"too wide: {page.evaluate(OVERFLOWING, SCROLLERS)}")


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_the_objection_form_is_accessible(axe, new_page, live_app, width):
    """The form of the demo's announced change (its id is the database's), held to the same rules."""
    from sqlalchemy import select

    from registry.extensions import db
    from registry.models import ChangeSet, ChangeStatus

    with live_app.app_context():
        change_set_id = db.session.scalar(select(ChangeSet.id).where(
            ChangeSet.status == ChangeStatus.IN_NOTICE).order_by(ChangeSet.id).limit(1))
    assert change_set_id is not None
    page = new_page(viewport=DESKTOP if width == "desktop" else PHONE, bypass_csp=True)
    response = page.goto(f"/objections/{change_set_id}/")
    assert response is not None and response.status == 200
    assert page.locator("h1:visible").count() == 1
    violations = axe(page, PUBLIC_TAGS)
    if violations:
        pytest.fail(describe_violations(violations), pytrace=False)
    if width == "phone":
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
