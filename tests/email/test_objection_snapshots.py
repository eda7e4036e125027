"""Snapshots of the objection mails (confirmation, acknowledgement, update); UPDATE_SNAPSHOTS=1 rewrites
them."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import OutgoingMail
from registry.notify.messages import render_email
from registry.services import objections
from tests.email.test_confirm_snapshot import check
from tests.factories import announced_change

NOW = datetime(2026, 3, 27, 10, 30, tzinfo=UTC)


@pytest.fixture
def change(app, monkeypatch):
    monkeypatch.setattr(objections, "new_token", lambda: "frozen-token-for-the-snapshot")
    return announced_change(NOW, title="New SMS provider <Textwave> & co")


def test_objection_mails(change, make_user):
    submission = objections.Submission(kind="objection", organisation="Northwind & Sons", contact_name="Ada",
                                       role="controller", items=[objections.items_of(change)[0][0]],
                                       grounds="Not on our vendor list.", asks_alternative=False)
    draft = objections.submit_from_form(db.session, change, "dpo@northwind.example", submission, NOW)
    rendered = render_email("objection_confirm", last_mail("objection_confirm"))
    assert "http://localhost/objections/confirm/frozen-token-for-the-snapshot" in rendered.text
    assert "&lt;Textwave&gt; &amp; co" in rendered.html and "<style" not in rendered.html
    check("objection_confirm", rendered)

    objections.confirm(db.session, "frozen-token-for-the-snapshot", NOW)
    received = render_email("objection_received", last_mail("objection_received"))
    assert "OBJ-2026-0001" in received.subject
    assert objections.status_url(draft) in received.text
    check("objection_received", fixed_status_link(received, draft))

    objections.move(db.session, draft, to="resolved", outcome="alternative_offered", version=draft.version,
                    actor=make_user("approver"), reply="We keep your messages with the current provider.",
                    now=NOW)
    update = render_email("objection_update", last_mail("objection_update"))
    assert update.subject == "OBJ-2026-0001: resolved: alternative offered"
    assert "We keep your messages with the current provider." in update.text
    check("objection_update", fixed_status_link(update, draft))


def last_mail(template: str) -> dict:
    return db.session.scalar(select(OutgoingMail.context).where(OutgoingMail.template == template)
                             .order_by(OutgoingMail.id.desc()))



def fixed_status_link(rendered, objection):
    """The status link signs the row id, which PostgreSQL's sequences do not restart between tests."""
    token = objections.status_token(objection.id)
    return replace(rendered, text=rendered.text.replace(token, "STATUS-TOKEN"),
                   html=rendered.html.replace(token, "STATUS-TOKEN"))
