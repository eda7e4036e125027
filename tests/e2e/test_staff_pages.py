"""Every staff page about notices and subscribers, in Chromium: screenshotted and axe-core clean."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from registry.extensions import db
from registry.models import ChangeSet, Notice, Subscriber, Topic
from registry.services import mail
from tests.e2e.test_staff_journeys import check, log_in

pytestmark = pytest.mark.e2e

ADMIN = "admin@ferncastle.example"


def test_notices_mailbox_and_subscribers_pages(new_page, axe, live_app, dispatch_mail):
    with live_app.app_context():
        change_set_id = db.session.scalar(select(Notice.change_set_id).order_by(Notice.id))
        subscriber_id = db.session.scalar(select(Subscriber.id).order_by(Subscriber.id))
        topic_id = db.session.scalar(select(Topic.id).where(Topic.is_administrative.is_(False)))
        title = db.session.get(ChangeSet, change_set_id).title
        mail.queue(db.session, to="dpo@northwind-logistics.example", template="dispatch_failed",
                   context={"notice_id": 1, "change_set_id": change_set_id, "count": 2,
                            "reason": "400 Bad Request: invalid email"})
        db.session.commit()
        db.session.remove()
    dispatch_mail()

    page = new_page(bypass_csp=True)
    log_in(page, ADMIN)
    pages = [
        ("notices", "/admin/notices/", "Notices"),
        ("proof", f"/admin/notices/{change_set_id}/", "Proof of notice"),
        ("mailbox", "/admin/notices/mailbox/", "Mailbox"),
        ("subscribers", "/admin/subscribers/", "Subscribers"),
        ("subscriber", f"/admin/subscribers/{subscriber_id}", "@"),
        ("import", "/admin/subscribers/import", "Import"),
        ("topics", "/admin/subscribers/topics", "Topics"),
        ("new-topic", "/admin/subscribers/topics/new", "topic"),
        ("edit-topic", f"/admin/subscribers/topics/{topic_id}/edit", "Edit"),
    ]
    for name, url, heading in pages:
        page.goto(url)
        expect(page.locator("main h1")).to_contain_text(heading)
        check(page, axe, name)

    page.goto(f"/admin/notices/{change_set_id}/")
    expect(page.locator("main")).to_contain_text(title)
    expect(page.locator("main")).to_contain_text("Every recipient is accounted for")

    page.goto("/admin/notices/mailbox/")
    page.get_by_role("link", name=re.compile("failed")).first.click()
    expect(page.locator("main")).to_contain_text("400 Bad Request: invalid email")
    check(page, axe, "mailbox-message")
