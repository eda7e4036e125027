"""The approvers' inbox: who is mailed for a submission, a mention and the daily digest, and who is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, select

from registry.extensions import db
from registry.models import InboxDigest, OutgoingMail
from registry.services import inbox, workflow
from tests.services.test_workflow import NOW, build_registry, drafted

LEGAL_ZONE = "Europe/Warsaw"


@pytest.fixture
def world(app):
    return build_registry(db.session)


@pytest.fixture
def people(make_user):
    return {"editor": make_user("editor", email="ed@example.com"),
            "approver": make_user("approver", email="ann@example.com"),
            "second": make_user("approver", email="sam@example.com"),
            "admin": make_user("admin", email="root@example.com")}


def mails(kind: str | None = None) -> list[tuple[str, str]]:
    rows = db.session.scalars(select(OutgoingMail).order_by(OutgoingMail.to))
    return [(m.to, m.context["subject"]) for m in rows
            if m.template.startswith("approver_") and (kind is None or m.context["kind"] == kind)]


def test_a_submission_mails_every_approver_who_wants_it_but_never_the_actor(world, people):
    people["second"].inbox_muted = ["review"]
    change_set = drafted(people, world)
    db.session.execute(delete(OutgoingMail))
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    subject = f"For review: change set #{change_set.id} December update"
    assert mails("review") == [("ann@example.com", subject)]
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.template == "approver_inbox"))
    assert mail.context["url"].endswith(f"/admin/change-sets/{change_set.id}")
    assert mail.context["account_url"].endswith("/admin/users/account")


def test_an_approver_submitting_is_not_mailed_about_it(world, people):
    change_set = workflow.create(db.session, title="Own", summary="s", is_material=True,
                                 actor=people["approver"], now=NOW)
    workflow.save_document_version(db.session, change_set, world["document"], source_md="# P\n\nx",
                                   summary="x", is_material=True, actor=people["approver"], now=NOW)
    workflow.submit(db.session, change_set, actor=people["approver"], now=NOW)
    assert [to for to, _ in mails("review")] == ["sam@example.com"]


def test_a_disabled_approver_gets_nothing(world, people):
    people["approver"].is_enabled = False
    change_set = drafted(people, world)
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    assert [to for to, _ in mails("review")] == ["sam@example.com"]


def test_a_mention_mails_the_named_staff_users_any_role(world, people):
    change_set = drafted(people, world)
    people["second"].inbox_muted = ["mention"]
    workflow.comment(db.session, change_set, actor=people["approver"], now=NOW,
                     body="@ed@example.com please check; also @Root@Example.com, @sam@example.com, "
                          "@ann@example.com (me) and @nobody@example.com. Not a mention: x@ed@example.com")
    assert [to for to, _ in mails("mention")] == ["ed@example.com", "root@example.com"]
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == "ed@example.com"))
    assert "please check" in mail.context["text"] and mail.context["url"].endswith("#comments")


def test_mentions_are_parsed_once_each_in_order():
    assert inbox.mentioned("hi @b@x.example and @A@x.example, again @b@x.example.") == [
        "b@x.example", "a@x.example"]
    assert inbox.mentioned("mail me at a@x.example") == []


def test_the_digest_goes_once_a_day_after_eight_and_only_when_something_waits(world, people):
    morning = datetime(2026, 12, 18, 6, 30, tzinfo=UTC)  # 07:30 in Warsaw: too early
    assert inbox.daily_digest(db.session, morning, legal_timezone=LEGAL_ZONE) is None
    nine = morning + timedelta(hours=1, minutes=30)
    assert inbox.daily_digest(db.session, nine, legal_timezone=LEGAL_ZONE) == []  # nothing waits
    assert db.session.get(InboxDigest, nine.date()).items == 0
    change_set = drafted(people, world)
    workflow.submit(db.session, change_set, actor=people["editor"], now=nine)
    db.session.execute(delete(OutgoingMail))
    assert inbox.daily_digest(db.session, nine + timedelta(hours=1), legal_timezone=LEGAL_ZONE) is None
    next_day = nine + timedelta(days=1)
    people["second"].inbox_muted = ["digest"]
    assert inbox.daily_digest(db.session, next_day, legal_timezone=LEGAL_ZONE) == ["ann@example.com"]
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.template == "approver_digest"))
    assert mail.context["items"] == [f"Change set #{change_set.id} December update: in review"]
    assert inbox.daily_digest(db.session, next_day + timedelta(hours=3), legal_timezone=LEGAL_ZONE) is None


def test_the_digest_lists_open_objections(world, people, monkeypatch):
    from registry.services import objections

    open_one = SimpleNamespace(kind="objection", status="in_discussion", reference="OBJ-2026-0001",
                               organisation="Northwind", change_set_id=7)
    resolved = SimpleNamespace(kind="objection", status="resolved", reference="OBJ-2026-0002",
                               organisation="Southwind", change_set_id=7)
    approval = SimpleNamespace(kind="approval", status="received", reference="OBJ-2026-0003",
                               organisation="Eastwind", change_set_id=7)
    monkeypatch.setattr(objections, "register", lambda session: [open_one, resolved, approval])
    day = datetime(2026, 12, 18, 9, 0, tzinfo=UTC)
    assert inbox.daily_digest(db.session, day, legal_timezone=LEGAL_ZONE) == ["ann@example.com",
                                                                               "sam@example.com"]
    assert mails("digest")[0][1] == "Waiting for approvers: 1 item"
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.template == "approver_digest"))
    assert mail.context["items"] == ["Objection OBJ-2026-0001 from Northwind on change set #7: in discussion"]


def test_unknown_kinds_are_refused(world, people):
    with pytest.raises(ValueError, match="unknown inbox mail kind"):
        inbox.notify_approvers(db.session, kind="spam", subject="s", text="t", url="u", now=NOW)
    with pytest.raises(ValueError, match="unknown inbox mail kinds"):
        inbox.set_muted(db.session, people["approver"], ["review", "spam"])


def test_objection_kinds_are_ready_for_the_objections_register(world, people):
    sent = inbox.notify_approvers(db.session, kind="objection_unanswered", subject="OBJ-2026-0042 unanswered",
                                  text="No answer for 2 business days.", url="https://r.example/x", now=NOW,
                                  exclude={people["second"].id})
    assert sent == ["ann@example.com"]
