"""A customer adds a webhook endpoint from their preferences page, copies the secret shown once, and
sees the test event's result in the delivery log after the worker tried it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.e2e.conftest import describe_violations

pytestmark = pytest.mark.e2e


def test_add_an_endpoint_and_see_the_test_event(new_page, axe, live_app):
    from registry.extensions import db
    from registry.models import Subscriber
    from registry.notify.endpoints import Deliverer
    from registry.services import subscriptions

    with live_app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                                       .order_by(Subscriber.id.desc()))
        token = subscriptions.preferences_token(subscriber.id, subscriber.generation)
        db.session.remove()
    page = new_page(bypass_csp=True)  # axe-core is injected as a script
    page.goto(f"/subscriptions/preferences/{token}")
    page.get_by_role("link", name="webhook endpoints").click()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    page.get_by_label("Endpoint URL").fill("http://hooks.customer.example/registry")
    page.get_by_label("Sub-processor changes").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#url-error")).to_contain_text("https://")  # the form says why
    page.get_by_label("Endpoint URL").fill("https://hooks.customer.example/registry")
    page.get_by_label("Sub-processor changes").check()
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#secret-value")).to_contain_text("whsec_")
    expect(page.locator("#latest")).to_contain_text("queued")
    violations = axe(page)
    assert not violations, describe_violations(violations)

    with live_app.app_context():
        # The worker's attempt; this name "resolves" to a private address, so nothing is connected to.
        deliverer = Deliverer(db.session, resolver=lambda host, port: ["10.0.0.7"])
        try:
            deliverer.drain()
        finally:
            deliverer.close()
            db.session.remove()
    page.goto(f"/subscriptions/preferences/{token}/endpoints/")
    page.get_by_role("link", name="https://hooks.customer.example/registry").click()
    expect(page.locator("#secret")).to_have_count(0)  # shown once, on the answer to the form
    expect(page.locator("#attempts")).to_contain_text("10.0.0.7 is a private address")
    expect(page.locator("#latest")).to_contain_text("1 attempt")
