"""Fixtures for the dispatcher: the fake SendGrid over HTTP and a sender pointed at it."""

from __future__ import annotations

import pytest

from registry.notify.senders import SendGridSender
from tests.fakes.sendgrid_server import API_KEY, FakeSendGrid


@pytest.fixture
def fake(tmp_path):
    with FakeSendGrid(record=tmp_path / "accepted.jsonl") as server:
        yield server


@pytest.fixture
def sendgrid(fake, app) -> SendGridSender:
    """The real sendgrid client, talking HTTP to the fake."""
    settings = app.config["REGISTRY"]
    return SendGridSender(api_key=API_KEY, host=fake.url, from_email=settings.mail_from, timeout=5.0)
