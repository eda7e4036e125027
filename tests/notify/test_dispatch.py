"""The dispatcher in-process, against the fake SendGrid over HTTP through the real sendgrid client."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter

import pytest
from sqlalchemy import event, func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, Delivery, Notice, OutgoingMail, SendAttempt
from registry.notify.dispatch import Dispatcher, Options, backoff
from registry.notify.senders import SendGridSender
from registry.services import mail as mail_service
from registry.services import notices, proof, provider_events
from tests.fakes.sendgrid_server import API_KEY, FakeSendGrid
from tests.notify.factories import email_for, notice_with_deliveries, status_counts


def deliveries(notice_id: int) -> list[Delivery]:
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == notice_id)
                                   .order_by(Delivery.id)))
    db.session.commit()
    return rows


def assert_reconciled(dispatch) -> None:
    """Eligible = sent + suppressed + failed, nothing pending, and the change set's notice completed."""
    progress = notices.progress(db.session, [dispatch.change_set_id])[dispatch.change_set_id]
    assert progress.eligible == progress.sent + progress.suppressed + progress.failed
    assert progress.pending == 0
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is not None


def test_sends_every_delivery_once_in_requests_of_at_most_1000(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 2500)
    stats = Dispatcher(db.session, sendgrid).drain()
    assert stats.sent == 2500 and stats.requests == 3
    assert [r.recipients for r in fake.requests] == [1000, 1000, 500]
    accepted = Counter(fake.delivery_ids())
    rows = deliveries(dispatch.notice_id)
    assert set(accepted) == {str(d.id) for d in rows} and set(accepted.values()) == {1}
    assert {d.status for d in rows} == {"sent"}
    assert all(d.provider_message_id and d.sent_at and not d.is_resent for d in rows)
    # One X-Message-Id per request, recorded on each of its recipients.
    assert len({d.provider_message_id for d in rows}) == 3
    assert_reconciled(dispatch)


def test_suppressed_addresses_are_never_sent(app, fake, sendgrid):
    suppressed = {email_for("customer", i) for i in (0, 7, 99)}
    dispatch = notice_with_deliveries(db.session, 100, suppressed=suppressed)
    Dispatcher(db.session, sendgrid).drain()
    sent_to = {email for email, _, _ in fake.accepted}
    assert len(sent_to) == 97 and not sent_to & suppressed
    assert status_counts(db.session, dispatch.notice_id) == {"sent": 97, "suppressed": 3}
    assert_reconciled(dispatch)


def test_429_and_500_are_retried_with_growing_backoff_honouring_retry_after(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 50)
    fake.script("500", "500", "500", "429:1")
    worker = Dispatcher(db.session, sendgrid, Options(backoff_base=0.1), rng=random.Random(4))
    stats = worker.drain()
    assert [r.status for r in fake.requests] == [500, 500, 500, 429, 202]
    times = [r.at for r in fake.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.1 * 2**n with equal jitter, drawn from the same seeded generator: each planned wait longer than
    # the one before, and each measured gap at least its planned wait (a busy machine only adds to it).
    rng, options = random.Random(4), Options(backoff_base=0.1)
    planned = [backoff(attempt, options, rng) for attempt in (1, 2, 3)]
    assert 0.05 <= planned[0] < planned[1] < planned[2] <= 0.4
    assert all(gap >= wait for gap, wait in zip(gaps, planned, strict=False))
    # ...and the 429's Retry-After: 1 is honoured though the backoff alone would be 0.8 s at most.
    assert gaps[3] >= 1.0
    assert stats.sent == 50 and stats.retried == 200 and stats.failed == 0
    assert fake.count() == 50 and len(set(fake.delivery_ids())) == 50
    rows = deliveries(dispatch.notice_id)
    assert {d.attempts for d in rows} == {5} and not any(d.is_resent for d in rows)
    assert_reconciled(dispatch)


def test_backoff_grows_is_capped_and_never_beats_retry_after():
    options = Options(backoff_base=2.0, backoff_cap=60.0)
    rng = random.Random(1)
    for attempts in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
        assert ceiling / 2 <= backoff(attempts, options, rng) <= ceiling
    assert backoff(1, options, rng, retry_after=30.0) == 30.0


def test_an_outage_longer_than_max_attempts_is_retried_until_sent_and_alerts_staff_once(
        app, fake, sendgrid, make_user):
    """Issue 9 item 19: 503s no longer use up attempts; the notice waits, and the staff hear it once."""
    admin = make_user("admin")
    dispatch = notice_with_deliveries(db.session, 10)
    fake.script(*["503"] * 6)
    worker = Dispatcher(db.session, sendgrid, Options(backoff_base=0.01, max_attempts=2))
    worker.send_deliveries()
    # Between failures the notice is not complete, and nothing counts as failed.
    assert status_counts(db.session, dispatch.notice_id) == {"queued": 10}
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is None
    db.session.commit()
    stats = worker.drain()
    assert stats.failed == 0 and stats.sent == 10 and stats.retried >= 10
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in deliveries(dispatch.notice_id)})
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"sent"} and min(d.attempts for d in rows) > 2
    alerts = list(db.session.scalars(select(OutgoingMail)))
    assert [(a.to, a.template, a.status) for a in alerts] == [(admin.email, "dispatch_delayed", "sent")]
    assert_reconciled(dispatch)


def test_a_4xx_fails_with_the_reason_and_alerts_approvers_and_admins(app, fake, sendgrid, make_user):
    approver, admin = make_user("approver"), make_user("admin")
    make_user("editor")
    make_user("admin", enabled=False)
    dispatch = notice_with_deliveries(db.session, 30)
    fake.script("400")
    stats = Dispatcher(db.session, sendgrid).drain()
    assert stats.failed == 30 and fake.delivery_ids() == []
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"failed"}
    assert rows[0].error == "HTTP 400: scripted 400"
    alerts = list(db.session.scalars(select(OutgoingMail).where(OutgoingMail.template == "dispatch_failed")))
    assert sorted(a.to for a in alerts) == sorted([approver.email, admin.email])
    # The alerts went out in the same run (their wording: tests/email/test_notice_snapshots.py).
    assert {a.status for a in alerts} == {"sent"}
    assert sorted(email for email, _, _ in fake.accepted) == sorted([approver.email, admin.email])
    assert_reconciled(dispatch)


def test_single_mails_are_retried_through_an_outage_for_the_retry_window(app, fake, sendgrid, make_user):
    from datetime import timedelta

    admin = make_user("admin")
    old = mail_service.queue(db.session, to=admin.email, template="dispatch_failed",
                             context={"notice_id": 1, "change_set_id": 1, "count": 1, "reason": "x"},
                             now=now_utc() - timedelta(hours=73))
    fresh = mail_service.queue(db.session, to=admin.email, template="dispatch_failed",
                               context={"notice_id": 1, "change_set_id": 1, "count": 1, "reason": "x"})
    db.session.commit()
    fake.script("503", "503")
    worker = Dispatcher(db.session, sendgrid, Options(max_attempts=1))
    worker.send_mails()
    old, fresh = db.session.get(OutgoingMail, old.id), db.session.get(OutgoingMail, fresh.id)
    assert old.status == "failed" and old.error == "gave up after 72 hours: HTTP 503: scripted 503"
    # A provider failure is no unknown outcome: --max-attempts 1 does not end the fresh one.
    assert fresh.status == "queued" and fresh.next_attempt_at is not None
    db.session.commit()


def test_queued_single_mails_are_sent_too(app, fake, sendgrid, make_user):
    admin = make_user("admin")
    dispatch = notice_with_deliveries(db.session, 1)
    mail_service.queue(db.session, to=admin.email, template="dispatch_failed",
                       context={"notice_id": dispatch.notice_id, "change_set_id": dispatch.change_set_id,
                                "count": 3, "reason": "HTTP 400: bad"})
    mail_service.queue(db.session, to=admin.email, template="no_such_template", context={})
    db.session.commit()
    stats = Dispatcher(db.session, sendgrid).drain()
    assert stats.mails_sent == 1 and stats.mails_failed == 1
    mails = {m.template: m for m in db.session.scalars(select(OutgoingMail))}
    assert mails["dispatch_failed"].status == "sent" and mails["dispatch_failed"].provider_message_id
    assert mails["no_such_template"].status == "failed"
    assert "could not render" in mails["no_such_template"].error
    # Settled mails keep no copy of their links (a confirmation token would still be live).
    assert mails["dispatch_failed"].context == {} and mails["no_such_template"].context == {}
    assert sorted(email for email, _, _ in fake.accepted) == sorted([admin.email, email_for("customer", 0)])


@pytest.mark.parametrize("answer", ["garbage", "drop", "nonjson:502"])
def test_garbage_answers_leave_the_outcome_unknown_then_resend_flagged(app, fake, sendgrid, answer):
    """Not HTTP, a dropped connection or a gateway's HTML: nothing lost, nothing taken twice by the fake,
    and the recipients flagged because the worker could not know."""
    dispatch = notice_with_deliveries(db.session, 40)
    fake.script(answer)
    stats = Dispatcher(db.session, sendgrid, Options(sending_timeout=0.3)).drain()
    assert stats.unknown == 40 and stats.resent == 40 and stats.sent == 40
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in deliveries(dispatch.notice_id)})
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"sent"} and all(d.is_resent for d in rows)
    assert_reconciled(dispatch)


def test_an_unexpected_4xx_with_a_non_json_body_fails_with_a_readable_reason(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 5)
    fake.script("nonjson:418")
    Dispatcher(db.session, sendgrid).drain()
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"failed"}
    assert rows[0].error.startswith("HTTP 418: <html>Bad Gateway")
    assert_reconciled(dispatch)


def test_a_webhook_event_settles_an_unknown_outcome_so_it_is_not_sent_again(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 20)
    # The provider takes the request but the answer never arrives (the worker times out).
    fake.script("sleep:1.5")
    sendgrid.timeout = 0.5
    worker = Dispatcher(db.session, sendgrid, Options(sending_timeout=3600))
    worker.send_deliveries()
    assert worker.stats.unknown == 20
    time.sleep(1.3)
    assert fake.count() == 20
    events = fake.processed_events(set(fake.delivery_ids()))
    provider_events.apply_provider_events(db.session, events)
    db.session.commit()
    worker.drain()
    assert fake.count() == 20
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"sent"} and not any(d.is_resent for d in rows)
    assert_reconciled(dispatch)


def test_a_stale_claim_recovered_by_another_worker_is_not_sent(app, fake, sendgrid):
    """A worker stalled past the sending timeout finds its claim taken over and sends nothing."""
    dispatch = notice_with_deliveries(db.session, 3)
    slow = Dispatcher(db.session, sendgrid)
    token, claimed = slow.claim()
    assert len(claimed) == 3
    other = Dispatcher(db.session, sendgrid, Options(sending_timeout=0))
    assert other.recover() == 3
    other.drain()
    assert slow._submit(slow._prepare(token, dispatch.notice_id, claimed)) is None
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"sent"}
    # Claimed but never handed to the provider: sent once, by the other worker, and not flagged.
    assert fake.count() == 3 and not any(d.is_resent for d in rows)


def test_the_delayed_alert_renders_with_its_link_and_says_the_notice_waits(app, make_user):
    from registry.notify import messages
    from registry.notify.dispatch import alert_staff

    make_user("admin")
    dispatch = notice_with_deliveries(db.session, 1)
    alert_staff(db.session, notice_id=dispatch.notice_id, count=7, reason="HTTP 503: unavailable",
                now=now_utc(), template="dispatch_delayed")
    [alert] = db.session.scalars(select(OutgoingMail))
    rendered = messages.render_email(alert.template, alert.context)
    link = f"/admin/notices/{dispatch.change_set_id}/"
    assert rendered.subject == f"Notice {dispatch.notice_id} is delayed: the mail provider is failing"
    for body in (rendered.text, rendered.html):
        assert link in body and "HTTP 503: unavailable" in body and "keeps retrying" in body
        assert "not complete" in body and "7 recipients" in body


def test_the_staff_alert_names_the_notice_the_count_and_the_reason(app, make_user):
    from registry.notify.dispatch import alert_staff

    approver = make_user("approver")
    make_user("editor")
    dispatch = notice_with_deliveries(db.session, 1)
    alert_staff(db.session, notice_id=dispatch.notice_id, count=3, reason="HTTP 400: bad", now=now_utc())
    [alert] = db.session.scalars(select(OutgoingMail))
    assert alert.to == approver.email and alert.template == "dispatch_failed"
    assert alert.context == {"notice_id": dispatch.notice_id, "change_set_id": dispatch.change_set_id,
                             "count": 3, "reason": "HTTP 400: bad"}


def test_sqlite_plans_the_per_request_statements_without_walking_the_notice(app, fake, sendgrid):
    """Each request's statements (recording a result, the settling check) read the claimed id range or
    the partial index of unsettled rows. SQLite, without statistics, used to pick the (notice_id, email)
    index and walk every row of the notice, once per request: 28 ms a request at 100,000 recipients."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans from statistics; the plan of a 30-row table says nothing")
    notice_with_deliveries(db.session, 30)
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        reads_or_writes = statement.lstrip().startswith(("SELECT", "UPDATE"))
        if "deliveries" in statement and reads_or_writes and not executemany:
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        Dispatcher(db.session, sendgrid, Options(batch_size=10, request_size=5)).drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    by_notice = [(sql, params) for sql, params in statements if "notice_id" in sql and "count(" not in sql]
    assert len(by_notice) >= 6 * 3  # six requests: still ours, the result, the settling checks
    with db.engine.connect() as connection:
        for sql, params in by_notice:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            plan = " | ".join(row[3] for row in rows)
            assert "sqlite_autoindex_deliveries" not in plan, (sql, plan)


def _accepted_values(fake) -> dict[str, dict]:
    """Each accepted recipient's part of the request, as the provider received it."""
    return {p["custom_args"]["delivery_id"]: {"substitutions": p.get("substitutions", {}),
                                              "headers": p.get("headers", {})}
            for body in fake.bodies for p in body["personalizations"]}


def test_each_recipient_s_values_are_those_of_the_request_that_was_accepted(app, tmp_path):
    """A 400 naming one address splits the request: the proof gives each accepted recipient the values
    of the half the provider took (the latest request holding it), and the refused one the last request
    that carried it."""
    with FakeSendGrid(record=tmp_path / "accepted.jsonl", keep_bodies=True) as fake:
        sender = SendGridSender(api_key=API_KEY, host=fake.url,
                                from_email=app.config["REGISTRY"].mail_from, timeout=5.0)
        dispatch = notice_with_deliveries(db.session, 8)
        bad = deliveries(dispatch.notice_id)[5]
        bad.email = "not an address@example.com"
        db.session.commit()
        Dispatcher(db.session, sender).drain()
        accepted = _accepted_values(fake)
    rows = deliveries(dispatch.notice_id)
    assert len(accepted) == 7 and str(bad.id) not in accepted
    for delivery in rows:
        _delivery, body, values = proof.sent_message(db.session, delivery.id)
        assert body.sha256 == db.session.get(Notice, dispatch.notice_id).body_sha256
        if delivery.id == bad.id:
            assert delivery.status == "failed" and values["substitutions"]
        else:
            assert delivery.status == "sent" and values == accepted[str(delivery.id)]
    # The first request and its halves, each kept with what it carried.
    requests = db.session.scalars(select(SendAttempt).where(SendAttempt.notice_id == dispatch.notice_id)
                                  .order_by(SendAttempt.id)).all()
    assert len(requests[0].personalizations) == 8 and len(requests) > 3


def test_an_unknown_outcome_keeps_naming_the_message_that_may_have_reached_them(app, fake, sendgrid):
    """The answer never came: queued again (flagged), each recipient still names the request that may
    have reached them, with its values; sent again, they name the new request."""
    dispatch = notice_with_deliveries(db.session, 4)
    fake.script("drop")
    worker = Dispatcher(db.session, sendgrid, Options(sending_timeout=0))
    worker.send_deliveries()
    first = {d.id: d.claim_token for d in deliveries(dispatch.notice_id)}
    worker.recover()
    rows = deliveries(dispatch.notice_id)
    assert {(d.status, d.is_resent) for d in rows} == {("queued", True)}
    before = {}
    for delivery in rows:
        assert delivery.claim_token == first[delivery.id]
        _delivery, body, values = proof.sent_message(db.session, delivery.id)
        assert body is not None and values["substitutions"]
        before[delivery.id] = values
    worker.drain()
    rows = deliveries(dispatch.notice_id)
    assert {d.status for d in rows} == {"sent"}
    for delivery in rows:
        assert delivery.claim_token != first[delivery.id]
        assert proof.sent_message(db.session, delivery.id)[2]["substitutions"].keys() == \
            before[delivery.id]["substitutions"].keys()
    told = db.session.scalar(select(func.count()).select_from(Delivery)
                             .where(Delivery.notice_id == dispatch.notice_id, notices.TOLD))
    assert told == 4
