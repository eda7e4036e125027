"""Snapshots of the approvers' inbox mails: a submission, a mention, the digest (UPDATE_SNAPSHOTS=1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, OutgoingMail, User
from registry.notify.messages import render_email
from registry.services import inbox
from tests.email.test_confirm_snapshot import check

NOW = datetime(2026, 3, 27, 9, 30, tzinfo=UTC)


@pytest.fixture
def staff(app):
    editor = User(id=1, email="editor@example.com", role="editor")
    approver = User(id=2, email="approver@example.com", role="approver")
    change_set = ChangeSet(id=7, title="Spring update <with> & ampersands", summary="s", is_material=True,
                           status=ChangeStatus.IN_REVIEW)
    db.session.add_all([editor, approver, change_set])
    db.session.flush()
    return editor, approver, change_set


def queued(template: str) -> OutgoingMail:
    return db.session.scalar(select(OutgoingMail).where(OutgoingMail.template == template))


def test_the_review_mail(staff):
    editor, _approver, change_set = staff
    inbox.change_set_submitted(db.session, change_set, actor=editor, now=NOW)
    rendered = render_email("approver_inbox", queued("approver_inbox").context)
    assert "http://localhost/admin/change-sets/7" in rendered.text
    assert "Spring update &lt;with&gt; &amp; ampersands" in rendered.html and "<style" not in rendered.html
    assert "http://localhost/admin/users/account" in rendered.text
    check("approver_review", rendered)


def test_the_mention_mail(staff):
    editor, _approver, change_set = staff
    inbox.comment_posted(db.session, change_set, actor=editor, now=NOW,
                         body="@approver@example.com could you look at clause 4?\nThanks")
    rendered = render_email("approver_inbox", queued("approver_inbox").context)
    assert rendered.subject == "editor@example.com mentioned you on change set #7"
    check("approver_mention", rendered)


def test_the_digest_mail(staff):
    assert inbox.daily_digest(db.session, NOW, legal_timezone="Europe/Warsaw") == ["approver@example.com"]
    rendered = render_email("approver_digest", queued("approver_digest").context)
    assert "- Change set #7 Spring update <with> & ampersands: in review" in rendered.text
    check("approver_digest", rendered)
