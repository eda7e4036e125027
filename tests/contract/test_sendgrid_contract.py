"""Our Mail Send payloads against SendGrid's OpenAPI description, served and checked by Stoplight Prism.

Needs sendgrid/oai_stoplight_v3paths.json from the shared folder beside the repository (or the file
named by REGISTRY_SENDGRID_SPEC) and Prism installed with `npm ci` in tests/contract/. Skipped with a
message when either is missing, except with CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from python_http_client.exceptions import HTTPError
from sqlalchemy import select

from registry.extensions import db
from registry.models import Delivery, Notice, OutgoingMail
from registry.notify import messages
from registry.notify.dispatch import Dispatcher
from registry.notify.senders import SendGridSender, mail_send_body
from registry.services import mail as mail_service
from tests.notify.factories import notice_with_deliveries

HERE = Path(__file__).resolve().parent
SPEC_NAME = Path("sendgrid") / "oai_stoplight_v3paths.json"


def _spec() -> Path:
    """REGISTRY_SENDGRID_SPEC, else ../shared beside the checkout, else the workplace's /work/shared."""
    if os.environ.get("REGISTRY_SENDGRID_SPEC"):
        return Path(os.environ["REGISTRY_SENDGRID_SPEC"])
    places = [HERE.parents[2] / "shared" / SPEC_NAME, Path("/work/shared") / SPEC_NAME]
    return next((place for place in places if place.exists()), places[0])


SPEC = _spec()
PRISM = HERE / "node_modules" / ".bin" / "prism"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prism(tmp_path_factory):
    if not SPEC.exists():
        missing(f"SendGrid's OpenAPI description is not at {SPEC}")
    if shutil.which("node") is None:
        missing("Node.js is not installed; the contract test needs it for Stoplight Prism")
    if not PRISM.exists():
        missing("Stoplight Prism is not installed: run `npm ci` in tests/contract/")
    port = free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    with log.open("w") as output:
        process = subprocess.Popen([str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
                                   cwd=HERE, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Prism is listening" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prism did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def post(host: str, body: dict) -> int:
    """Send one payload; on a schema violation show Prism's list of what is wrong."""
    client = SendGridSender(api_key="SG.contract", host=host, from_email="unused@example.com").client
    try:
        response = client.client.mail.send.post(request_body=body, request_headers={"Prefer": "code=202"})
    except HTTPError as error:
        violations = error.headers.get("sl-violations") if error.headers is not None else None
        pytest.fail(f"Prism refused the payload ({error.status_code}): "
                    f"{json.dumps(json.loads(violations), indent=1) if violations else error.body!r}")
    return response.status_code


def test_a_notice_batch_of_1000_personalizations_matches_the_schema(app, prism):
    dispatch = notice_with_deliveries(db.session, 1000)
    notice = db.session.get(Notice, dispatch.notice_id)
    batch = messages.notice_batch_message(db.session, notice)
    rows = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.id))
    recipients = [messages.recipient(d.id, d.email, d.subscriber_id, d.topic_id) for d in rows]
    settings = app.config["REGISTRY"]
    body = mail_send_body(batch, recipients, from_email=settings.mail_from, from_name="Registry notices")
    assert len(body["personalizations"]) == 1000
    assert post(prism, body) == 202


def test_the_dispatcher_sends_notices_and_single_mails_that_prism_accepts(app, prism, make_user):
    admin = make_user("admin")
    dispatch = notice_with_deliveries(db.session, 5)
    mail_service.queue(db.session, to=admin.email, template="dispatch_failed",
                       context={"notice_id": dispatch.notice_id, "change_set_id": dispatch.change_set_id,
                                "count": 2, "reason": "HTTP 400: example"})
    db.session.commit()
    settings = app.config["REGISTRY"]
    sender = SendGridSender(api_key="SG.contract", host=prism, from_email=settings.mail_from)
    sender.client.client.request_headers["Prefer"] = "code=202"
    stats = Dispatcher(db.session, sender).drain()
    assert (stats.sent, stats.failed, stats.mails_sent, stats.mails_failed) == (5, 0, 1, 0)
    assert db.session.scalar(select(OutgoingMail.status)) == "sent"


def test_prism_does_refuse_a_payload_that_breaks_the_schema(prism):
    """So that the two tests above can fail: a personalization without `to` is a violation."""
    client = SendGridSender(api_key="SG.contract", host=prism, from_email="unused@example.com").client
    body = {"personalizations": [{"custom_args": {"delivery_id": "1"}}], "from": {"email": "a@example.com"},
            "subject": "x", "content": [{"type": "text/plain", "value": "y"}]}
    with pytest.raises(HTTPError) as raised:
        client.client.mail.send.post(request_body=body, request_headers={"Prefer": "code=202"})
    assert raised.value.status_code == 400
    assert "must have required property 'to'" in raised.value.headers.get("sl-violations")
