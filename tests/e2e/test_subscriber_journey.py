"""A customer subscribes, confirms from the email in the local outbox, changes topics, and uses the
one-click unsubscribe; the preferences page reflects each step, and every page passes axe-core."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.e2e.conftest import ARTIFACTS, describe_violations

pytestmark = pytest.mark.e2e

ADDRESS = "journey@customer.example"


def confirmation_link(outbox: Path, base_url: str, live_server: str) -> str:
    """The confirmation URL from the newest .eml addressed to ADDRESS, pointed at the live server."""
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == ADDRESS:
            assert "Confirm your subscription" in message["Subject"]
            text = message.get_body(preferencelist=("plain",)).get_content()
            html = message.get_body(preferencelist=("html",)).get_content()
            [link] = {line.strip() for line in text.splitlines() if "/subscriptions/confirm/" in line}
            assert link in html
            return live_server + link.removeprefix(base_url)
    raise AssertionError(f"no email to {ADDRESS} in {outbox}")


def check_accessible(page: Page, axe) -> None:
    violations = axe(page)
    assert not violations, describe_violations(violations)


def test_subscribe_confirm_choose_topics_and_unsubscribe(new_page, axe, live_app, live_server,
                                                         dispatch_mail):
    from registry.extensions import db
    from registry.models import Subscriber, Topic
    from registry.services import subscriptions

    ARTIFACTS.mkdir(exist_ok=True)
    page = new_page(bypass_csp=True)
    page.goto("/subscriptions/")
    expect(page.get_by_label("Administrative")).to_be_checked()
    expect(page.get_by_label("Administrative")).to_be_disabled()
    check_accessible(page, axe)
    page.get_by_label("Email address").fill(ADDRESS)
    page.get_by_label("Non-material updates").check()
    page.get_by_label("Document updates").uncheck()
    page.screenshot(path=ARTIFACTS / "subscriber-1-form.png", full_page=True)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    check_accessible(page, axe)

    dispatch_mail()  # flask notices dispatch --once: the queued confirmation goes to the outbox
    settings = live_app.config["REGISTRY"]
    link = confirmation_link(Path(live_app.instance_path) / "outbox", settings.base_url, live_server)

    page.goto(link)  # a GET, as a mail scanner would: nothing is confirmed yet
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    with live_app.app_context():
        assert db.session.scalar(select(Subscriber.status).where(Subscriber.email == ADDRESS)) == "pending"
    check_accessible(page, axe)
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_text("your subscription is confirmed")).to_be_visible()
    expect(page.get_by_label("Non-material updates")).to_be_checked()
    expect(page.get_by_label("Document updates")).not_to_be_checked()
    expect(page.get_by_label("Sub-processor changes")).to_be_checked()
    check_accessible(page, axe)
    page.screenshot(path=ARTIFACTS / "subscriber-2-confirmed.png", full_page=True)

    page.get_by_label("Document updates").check()
    page.get_by_role("button", name="Save topics").click()
    expect(page.get_by_text("Your choices are saved")).to_be_visible()
    expect(page.get_by_label("Document updates")).to_be_checked()

    with live_app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == ADDRESS))
        topic_id = db.session.scalar(select(Topic.id).where(Topic.key == "subprocessors"))
        one_click = subscriptions.unsubscribe_url(subscriber.id, topic_id, subscriber.generation)
        db.session.remove()
    one_click = live_server + one_click.removeprefix(settings.base_url)
    response = page.request.post(one_click, form={"List-Unsubscribe": "One-Click"}, max_redirects=0)
    assert response.status == 200

    page.reload()
    expect(page.get_by_label("Sub-processor changes")).not_to_be_checked()
    expect(page.get_by_label("Document updates")).to_be_checked()
    page.screenshot(path=ARTIFACTS / "subscriber-3-after-one-click.png", full_page=True)

    page.goto(one_click)  # the same link opened in a browser shows a button and changes nothing
    expect(page.get_by_role("button", name="Unsubscribe from Sub-processor changes")).to_be_visible()
    check_accessible(page, axe)
