"""What a mail says stays true: bodies follow the current plan, a moved date is told, deadlines hold.

The reproduction of issue 8 §3: a notice scheduled at 23:59:30 in Warsaw with the earliest date the rule
allows, whose dispatch finishes (or is still running) after midnight, so that the date moves by a day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from registry.domain.deadlines import deadline_words
from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Delivery, MessageBody, Notice, NoticePolicy, SendAttempt
from registry.notify import messages
from registry.notify.dispatch import Dispatcher, Options
from registry.notify.senders import RecordingSender, personalize
from registry.services import notices, publishing
from tests.services.test_notices import SUBPROCESSOR, make_subscriber, make_topics

WARSAW = ZoneInfo("Europe/Warsaw")
# 23:59:30 in Warsaw on Monday 1 June 2026.
SCHEDULED = datetime(2026, 6, 1, 23, 59, 30, tzinfo=WARSAW).astimezone(UTC)
AFTER_MIDNIGHT = datetime(2026, 6, 2, 0, 0, 30, tzinfo=WARSAW).astimezone(UTC)
# 14 calendar days from a notice completed on 1 June: 16 June, 00:00; completed on 2 June: 17 June.
PLANNED = datetime(2026, 6, 16, tzinfo=WARSAW).astimezone(UTC)
MOVED = datetime(2026, 6, 17, tzinfo=WARSAW).astimezone(UTC)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def scheduled(app):
    """A new sub-processor (14 calendar days' notice, 14 days to object) told to 30 subscribers."""
    db.session.add(NoticePolicy(key="subprocessors", name="Sub-processor list", length=14,
                                unit="calendar_days", calendars=["PL"], timezone="Europe/Warsaw",
                                objection_days=14))
    topics = make_topics()
    emails = [f"customer-{i:02d}@example.com" for i in range(30)]
    for address in emails:
        make_subscriber(address, topics)
    change_set = publishing.create_change_set(db.session, title="Acme Mail as a sub-processor",
                                              summary="Transactional email.", is_material=True)
    publishing.draft_subprocessor_change(db.session, change_set, "acme-mail", "add", fields=SUBPROCESSOR)
    assert publishing.earliest_effective_for(db.session, change_set, SCHEDULED) == PLANNED
    publishing.publish(db.session, change_set, published_at=SCHEDULED, notice_completed_at=None,
                       effective_at=PLANNED, now=SCHEDULED)
    notice = notices.start_notice(db.session, change_set, now=SCHEDULED)
    db.session.commit()
    return change_set.id, notice.id, emails


def mails(sender: RecordingSender) -> dict[str, list[tuple[str, str]]]:
    """Per address, every (subject, text) it was sent, personalised as the provider would."""
    got: dict[str, list[tuple[str, str]]] = {}
    for batch, recipients in sender.requests:
        for r in recipients:
            got.setdefault(r.email, []).append((personalize(batch.subject, r.substitutions),
                                                personalize(batch.text, r.substitutions)))
    return got


def local(value: datetime) -> str:
    return messages.moment(value, "Europe/Warsaw")["local"]


def test_a_date_moved_during_the_dispatch_is_in_every_later_body_and_told_to_the_earlier(scheduled):
    change_set_id, _notice_id, emails = scheduled
    clock = Clock(SCHEDULED + timedelta(seconds=10))
    sender = RecordingSender()
    worker = Dispatcher(db.session, sender, Options(batch_size=10, request_size=10), clock=clock)
    assert worker.send_deliveries() == 10  # the first ten are told 16 June
    clock.at = AFTER_MIDNIGHT  # another worker's tick: the notice can no longer complete on 1 June
    moved = publishing.postpone_overdue(db.session, now=AFTER_MIDNIGHT)
    assert [c.id for c in moved] == [change_set_id]
    db.session.commit()
    worker.drain()

    got = mails(sender)
    first, rest = emails[:10], emails[10:]
    for address in first:
        (_announcement_subject, announcement), (moved_subject, moved_text) = got[address]
        assert local(PLANNED) in announcement and local(MOVED) not in announcement
        assert moved_subject == "Date moved: Acme Mail as a sub-processor"
        assert f"We told you this change would take effect on {local(PLANNED)}." in moved_text
        assert f"It now takes effect on {local(MOVED)}" in moved_text
        assert "the notice is still being sent" in moved_text
    for address in rest:
        [(_subject, announcement)] = got[address]  # no date-moved mail: their notice was right
        assert local(MOVED) in announcement and local(PLANNED) not in announcement
    change_set = db.session.get(ChangeSet, change_set_id)
    assert change_set.effective_at == MOVED
    assert change_set.objection_deadline_at <= change_set.effective_at


def test_a_notice_completed_after_midnight_tells_everyone_the_new_date(scheduled):
    change_set_id, _notice_id, emails = scheduled
    sender = RecordingSender()
    Dispatcher(db.session, sender, clock=Clock(AFTER_MIDNIGHT)).drain()

    change_set = db.session.get(ChangeSet, change_set_id)
    assert change_set.effective_at == MOVED
    assert change_set.status == ChangeStatus.IN_NOTICE
    assert change_set.objection_deadline_at <= change_set.effective_at
    [moved] = db.session.scalars(select(Notice).where(Notice.kind == "date_moved")).all()
    assert (moved.moved_from_at, moved.moved_to_at) == (PLANNED, MOVED)
    assert moved.reason == "the notice completed later than planned"
    got = mails(sender)
    assert sorted(got) == sorted(emails)
    for address in emails:
        (_s, announcement), (_m, moved_text) = got[address]
        assert local(PLANNED) in announcement
        assert f"It now takes effect on {local(MOVED)}" in moved_text
        deadline = deadline_words(change_set.objection_deadline_at, "Europe/Warsaw").text
        assert f"You may object to this change {deadline}" in moved_text
    # The date-moved notice does not hold up the notice itself, and is complete in its turn.
    assert change_set.notice_completed_at == AFTER_MIDNIGHT
    assert db.session.get(Notice, moved.id).dispatch_completed_at is not None


def test_a_move_before_anyone_was_told_is_recorded_with_nobody_to_tell(scheduled):
    change_set_id, _notice_id, _emails = scheduled
    moved = publishing.postpone_overdue(db.session, now=AFTER_MIDNIGHT)
    assert [c.id for c in moved] == [change_set_id]
    [notice] = db.session.scalars(select(Notice).where(Notice.kind == "date_moved")).all()
    assert db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)).all() == []
    assert notice.dispatch_completed_at == AFTER_MIDNIGHT
    # ... and it does not complete the change's own notice, still to be sent.
    assert db.session.get(ChangeSet, change_set_id).notice_completed_at is None


def test_claimed_deliveries_of_a_change_withdrawn_meanwhile_are_not_sent(scheduled, monkeypatch):
    change_set_id, notice_id, _emails = scheduled
    sender = RecordingSender()
    worker = Dispatcher(db.session, sender, Options(batch_size=10, request_size=10),
                        clock=Clock(SCHEDULED + timedelta(seconds=10)))
    claim = worker.claim

    def claim_then_withdraw():
        claimed = claim()
        # An approver withdraws the change while this worker holds its claim.
        change_set = db.session.get(ChangeSet, change_set_id)
        change_set.status, change_set.withdrawn_at = ChangeStatus.WITHDRAWN, SCHEDULED + timedelta(seconds=20)
        notices.cancel_unsent(db.session, change_set, now=SCHEDULED + timedelta(seconds=20))
        db.session.commit()
        return claimed

    monkeypatch.setattr(worker, "claim", claim_then_withdraw)
    assert worker.send_deliveries() == 10
    assert sender.requests == []
    rows = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice_id)).all()
    assert {d.status for d in rows} == {"failed"}
    assert {d.error for d in rows} == {"not sent: the change was withdrawn"}


def test_a_move_tells_those_accepted_and_those_whose_request_is_on_its_way(scheduled):
    """A request built before the move may be accepted after it: its recipients are told too; a claim
    not yet built (no message recorded) will be built for the new plan, so it is not."""
    _change_set_id, notice_id, emails = scheduled
    db.session.add(MessageBody(sha256="b" * 64, subject="s", text="t", html="h"))
    rows = {d.email: d for d in db.session.scalars(select(Delivery).where(Delivery.notice_id == notice_id))}
    rows[emails[0]].status = "sent"
    rows[emails[1]].status, rows[emails[1]].claim_token = "sending", "t1"
    rows[emails[2]].status, rows[emails[2]].claim_token = "sending", "t2"
    db.session.flush()
    db.session.add(SendAttempt(claim_token="t1", notice_id=notice_id, first_delivery_id=rows[emails[1]].id,
                               last_delivery_id=rows[emails[1]].id, recipients=1, message_sha256="b" * 64,
                               personalizations={}))
    db.session.commit()
    publishing.postpone_overdue(db.session, now=AFTER_MIDNIGHT)
    [moved] = db.session.scalars(select(Notice).where(Notice.kind == "date_moved")).all()
    told = db.session.scalars(select(Delivery.email).where(Delivery.notice_id == moved.id)).all()
    assert sorted(told) == sorted(emails[:2])


def test_a_change_in_effect_at_once_ends_its_objection_window_then(app):
    """A non-material sub-processor change may take effect when its notice goes out; the policy's 14
    days to object would fall after that, so the deadline is the effective date."""
    db.session.add(NoticePolicy(key="subprocessors", name="Sub-processor list", length=14,
                                unit="calendar_days", calendars=["PL"], timezone="Europe/Warsaw",
                                objection_days=14))
    make_subscriber("reader@example.com", make_topics(), ("subprocessors",))
    change_set = publishing.create_change_set(db.session, title="Typo in an address", is_material=False)
    publishing.draft_subprocessor_change(db.session, change_set, "acme-mail", "add", fields=SUBPROCESSOR)
    publishing.publish(db.session, change_set, published_at=SCHEDULED, notice_completed_at=None,
                       effective_at=SCHEDULED, now=SCHEDULED)
    assert change_set.objection_deadline_at > change_set.effective_at  # as the policies alone give it
    notices.start_notice(db.session, change_set, now=SCHEDULED)
    assert change_set.objection_deadline_at == change_set.effective_at
    Dispatcher(db.session, RecordingSender(), clock=Clock(SCHEDULED + timedelta(minutes=1))).drain()
    change_set = db.session.get(ChangeSet, change_set.id)
    assert change_set.notice_completed_at is not None
    # Completed a minute later, so in effect then (the date moved with it), and so ends the window.
    assert change_set.objection_deadline_at == change_set.effective_at == SCHEDULED + timedelta(minutes=1)
