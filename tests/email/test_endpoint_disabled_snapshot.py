"""Snapshot of the mail telling an endpoint's owner it was disabled; UPDATE_SNAPSHOTS=1 rewrites it."""

from registry.extensions import db
from registry.models import Endpoint
from registry.notify.messages import render_email
from registry.services import endpoints
from tests.email.test_confirm_snapshot import check


def test_endpoint_disabled_email(app):
    endpoint = Endpoint(id=7, url="https://hooks.customer.example/registry?x=<1>", secret="whsec_x",
                        disabled_reason="")
    db.session.add(endpoint)
    context = endpoints.disabled_mail_context(endpoint, "every attempt failed for 3 days (last: HTTP 503)")
    rendered = render_email(endpoints.DISABLED_TEMPLATE, context)
    assert "https://hooks.customer.example/registry?x=&lt;1&gt;" in rendered.html
    assert "HTTP 503" in rendered.text
    check("endpoint_disabled", rendered)
