"""Objections in the browser, on SQLite and on PostgreSQL: a customer objects from a notice's link and from
the public page (confirming the address from the mail in the outbox), gets the acknowledgement and follows
the state; staff answer and resolve it; the proof lists it; a form sent after the deadline is refused."""

from __future__ import annotations

import email
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

from tests.conftest import Databases, dispose, migrated_app
from tests.e2e.conftest import ARTIFACTS, DESKTOP, QuietRequestHandler, describe_violations
from tests.e2e.test_staff_journeys import log_in

pytestmark = pytest.mark.e2e

EDITOR = "editor@ferncastle.example"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory) -> Iterator[tuple[Flask, str]]:
    """The demo served on a throw-away database of each backend, mail going to the outbox folder."""
    from registry.domain.clock import now_utc
    from registry.extensions import db
    from registry.services import demo

    folder = tmp_path_factory.mktemp(f"objections-{request.param}")
    databases = Databases(request.param, folder)
    app = migrated_app(databases.new(), folder / "instance", mail_sender="outbox")
    with app.app_context():
        demo.load(db.session, now_utc())
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"e2e-{request.param}", daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    dispose(app)
    databases.drop_all()


@pytest.fixture
def open_page(browser: Browser, site, request):
    _app, url = site
    pages: list[Page] = []

    def make(**options) -> Page:
        context = browser.new_context(viewport=DESKTOP, base_url=url, **options)
        context.set_default_timeout(5_000)
        page = context.new_page()
        pages.append(page)
        return page

    yield make
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    for index, page in enumerate(pages):
        if page.url != "about:blank":
            page.screenshot(path=ARTIFACTS / f"{name}-{index + 1}.png", full_page=True)
        page.context.close()


def dispatch(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["notices", "dispatch", "--once"])
    assert result.exit_code == 0, result.output


def newest_mail(app: Flask, to: str, subject: str) -> tuple[str, str]:
    """The text and HTML of the newest mail to `to` whose subject contains `subject`."""
    outbox: Path = app.config["REGISTRY"].instance_path / "outbox"
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == to and subject in message["Subject"]:
            return (message.get_body(preferencelist=("plain",)).get_content(),
                    message.get_body(preferencelist=("html",)).get_content())
    raise AssertionError(f"no mail to {to} about {subject!r} in {outbox}")


def link_in(text: str, path: str, app: Flask, url: str) -> str:
    (link,) = {word for line in text.splitlines() for word in line.split() if path in word}
    return url + link.removeprefix(app.config["REGISTRY"].base_url)


def upcoming_change(app: Flask):
    from sqlalchemy import select

    from registry.extensions import db
    from registry.models import ChangeSet, Notice

    with app.app_context():
        change = db.session.scalar(select(ChangeSet).join(Notice, Notice.change_set_id == ChangeSet.id)
                                   .where(ChangeSet.status == "in_notice").order_by(ChangeSet.id.desc()))
        db.session.expunge(change)
        db.session.remove()
    return change


def fill(page: Page, *, organisation: str, item: str, grounds: str) -> None:
    page.get_by_label("Objection", exact=True).check()
    page.get_by_label("Organisation").fill(organisation)
    page.get_by_label("Your name").fill("Jo Smith")
    page.get_by_label("Controller", exact=True).check()
    page.get_by_label(item).check()
    page.get_by_label("Grounds").fill(grounds)


def test_a_customer_objects_from_the_public_page_and_staff_resolve_it(site, open_page, axe):
    app, url = site
    address = "legal@orchard-retail.example"
    customer = open_page(bypass_csp=True)
    customer.goto("/upcoming")
    how = customer.locator(".how-to-object").first
    expect(how).to_contain_text("That day is included.")
    expect(how).to_contain_text(re.compile(r"until the end of \d+ \w+ \d{4} \(23:59 CES?T; \d\d:59 UTC"))
    how.get_by_role("link", name="Object to this change, or approve it").click()
    expect(customer.get_by_role("heading", name="Object to or approve a change")).to_be_visible()
    assert not axe(customer), describe_violations(axe(customer))
    customer.get_by_label("Email address").fill(address)
    fill(customer, organisation="Orchard Retail", item="New sub-processor: Kestrel Messaging",
         grounds="Kestrel is not on our approved vendor list.")
    ARTIFACTS.mkdir(exist_ok=True)
    customer.screenshot(path=ARTIFACTS / "objection-form.png", full_page=True)
    customer.get_by_role("button", name="Send").click()
    expect(customer.get_by_role("heading", name="Check your inbox")).to_be_visible()

    dispatch(app)
    text, _html = newest_mail(app, address, "Confirm your objection")
    customer.goto(link_in(text, "/objections/confirm/", app, url))
    customer.get_by_role("button", name="Confirm and send").click()
    expect(customer.locator(".objection-state")).to_have_text("Received")
    reference = customer.get_by_role("heading", level=1).inner_text().split()[-1]
    assert re.fullmatch(r"OBJ-\d{4}-\d{4}", reference)
    assert not axe(customer), describe_violations(axe(customer))

    dispatch(app)
    text, html = newest_mail(app, address, f"{reference}: we have received your objection")
    status_link = link_in(text, "/objections/status/", app, url)
    assert status_link.removeprefix(url) in html

    staff = open_page()
    log_in(staff, EDITOR)
    staff.goto("/admin/objections/")
    staff.get_by_role("link", name=reference).click()
    staff.get_by_label("Move to").select_option("acknowledged")
    staff.get_by_label("Message to the customer").fill("Thank you, we are reviewing it.")
    staff.get_by_role("button", name="Save the new state").click()
    expect(staff.locator("dl.facts")).to_contain_text("Acknowledged")
    staff.get_by_label("Move to").select_option("resolved")
    staff.get_by_label("Outcome").select_option("withdrawn_for_customer")
    staff.get_by_label("Message to the customer").fill("Your data will not be sent to Kestrel.")
    staff.get_by_role("button", name="Save the new state").click()
    expect(staff.locator("dl.facts")).to_contain_text("Resolved: Change withdrawn for this customer")
    staff.screenshot(path=ARTIFACTS / "objection-staff.png", full_page=True)

    customer.goto(status_link)
    expect(customer.locator(".objection-state")).to_have_text("Resolved: Change withdrawn for this customer")
    expect(customer.locator(".objection-timeline")).to_contain_text("Your data will not be sent to Kestrel.")

    change = upcoming_change(app)
    staff.goto(f"/admin/notices/{change.id}/")
    proof = staff.locator("section", has=staff.get_by_role("heading", name="Objections and approvals"))
    expect(proof).to_contain_text(reference)
    expect(proof).to_contain_text("Change withdrawn for this customer")
    staff.goto(f"/admin/change-sets/{change.id}")
    expect(staff.locator(".objection-warning")).to_contain_text("1 open objection")  # the demo's own


def test_a_customer_objects_from_the_notice_link_and_a_late_form_is_refused(site, open_page):
    from sqlalchemy import select

    from registry.extensions import db
    from registry.models import ChangeSet, Delivery, Notice
    from registry.services import objections

    app, _url = site
    change = upcoming_change(app)
    with app.app_context():
        delivery = db.session.scalar(select(Delivery).join(Notice).where(
            Notice.change_set_id == change.id, Delivery.email == "security@kettle-analytics.example"))
        link = objections.notice_url(delivery.id).removeprefix(app.config["REGISTRY"].base_url)
        db.session.remove()

    customer = open_page()
    customer.goto(link)
    expect(customer.locator("form")).to_contain_text("security@kettle-analytics.example")
    fill(customer, organisation="Kettle Analytics", item="New sub-processor: Kestrel Messaging", grounds="")
    customer.get_by_role("button", name="Send").click()
    expect(customer.locator("#grounds-error")).to_have_text("Give the grounds of your objection.")
    customer.get_by_label("Grounds").fill("Our DPA bars transfers to new SMS vendors.")
    customer.get_by_label("We ask for an alternative").check()
    customer.get_by_role("button", name="Send").click()
    expect(customer.locator(".objection-state")).to_have_text("Received")
    expect(customer.locator(".sent-notice")).to_contain_text("Thank you")
    dispatch(app)
    newest_mail(app, "security@kettle-analytics.example", "we have received your objection")

    # The form is open on the page, and the deadline passes before it is sent.
    late = open_page()
    late.goto(link)
    fill(late, organisation="Kettle Analytics", item="New sub-processor: Kestrel Messaging",
         grounds="Too late?")
    with app.app_context():
        row = db.session.get(ChangeSet, change.id)
        deadline = row.objection_deadline_at
        row.objection_deadline_at = row.published_at + timedelta(seconds=1)
        db.session.commit()
        try:
            late.get_by_role("button", name="Send").click()
            expect(late.get_by_role("heading", name="Objections to this change are closed")).to_be_visible()
            expect(late.locator(".closed-notice")).to_contain_text("closed at the end of")
            expect(late.locator(".closed-notice")).to_contain_text("UTC")
            late.goto(f"/objections/{change.id}/")
            expect(late.locator(".closed-notice")).to_contain_text("write to")
            expect(late.locator("#objection-form")).to_have_count(0)
        finally:
            row = db.session.get(ChangeSet, change.id)
            row.objection_deadline_at = deadline
            db.session.commit()
            db.session.remove()
