"""Issue 9 item 18: one address SendGrid refuses no longer fails the whole batch.

A single `zoë@example.com` in a request of 1,000 made SendGrid answer 400 for all of it; the worker
failed all 1,000 and the notice counted as given. Now a 400 naming personalizations is split in halves
until only the refused recipients fail, each with SendGrid's reason.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select, update

from registry.extensions import db
from registry.models import ChangeSet, Delivery, OutgoingMail
from registry.notify.dispatch import Dispatcher
from registry.services import proof
from tests.fakes.sendgrid_server import INVALID_ADDRESS
from tests.notify import conftest as notify_fixtures
from tests.notify.factories import notice_with_deliveries, status_counts

# The fake SendGrid over HTTP and the real client pointed at it, as in tests/notify.
fake, sendgrid = notify_fixtures.fake, notify_fixtures.sendgrid

REFUSED = ["zoë@example.com", "double..dot@example.com", "user@exämple.pl", "\U0001f600@example.com"]


def give_bad_addresses(notice_id: int, positions: list[int]) -> dict[int, str]:
    """Put the refused addresses on some deliveries (as an import or a subscribe form once let in)."""
    ids = list(db.session.scalars(select(Delivery.id).where(Delivery.notice_id == notice_id)
                                  .order_by(Delivery.id)))
    chosen = {ids[p]: address for p, address in zip(positions, REFUSED, strict=True)}
    for delivery_id, address in chosen.items():
        db.session.execute(update(Delivery).where(Delivery.id == delivery_id).values(email=address))
    db.session.commit()
    return chosen


def test_refused_addresses_fail_alone_and_everyone_else_is_sent_once(app, fake, sendgrid, make_user):
    admin = make_user("admin")
    dispatch = notice_with_deliveries(db.session, 1000)
    bad = give_bad_addresses(dispatch.notice_id, [3, 400, 401, 999])

    stats = Dispatcher(db.session, sendgrid).drain()

    # Every other recipient accepted exactly once; the refused ones never.
    accepted = Counter(fake.delivery_ids())
    rows = {d.id: d for d in db.session.scalars(
        select(Delivery).where(Delivery.notice_id == dispatch.notice_id))}
    assert set(accepted) == {str(i) for i in rows if i not in bad} and set(accepted.values()) == {1}
    assert status_counts(db.session, dispatch.notice_id) == {"sent": 996, "failed": 4}
    for delivery_id in bad:
        assert rows[delivery_id].status == "failed"
        assert rows[delivery_id].error == f"HTTP 400: {INVALID_ADDRESS}"
    # Halving 1,000 to isolate 4 addresses (two of them neighbours) costs a few dozen requests, not 1,000.
    notice_requests = [r for r in fake.requests if r.recipients != 1 or r.status != 202]
    assert stats.sent == 996 and stats.failed == 4 and len(notice_requests) <= 60
    print(f"requests to isolate 4 refused addresses among 1000: {len(notice_requests)}")

    # The notice is complete (those four cannot be reached by mail)...
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is not None
    # ...the staff get one alert naming them...
    [alert] = db.session.scalars(select(OutgoingMail).where(OutgoingMail.template == "dispatch_failed"))
    assert alert.to == admin.email and alert.status == "sent"
    assert fake.acceptances()[admin.email] == 1
    # ...and the proof of notice lists them with the provider's reason.
    item = proof.proof(db.session, dispatch.change_set_id)
    assert item.is_reconciled and item.totals.failed == 4 and item.totals.sent == 996
    exported = {row["email"]: row for row in proof.export_rows(db.session, dispatch.change_set_id)}
    for address in REFUSED:
        assert exported[address]["status"] == "failed"
        assert INVALID_ADDRESS in exported[address]["error"]


def test_the_alert_names_each_refused_address_once(app, fake, sendgrid, make_user):
    approver = make_user("approver")
    dispatch = notice_with_deliveries(db.session, 40)
    bad = give_bad_addresses(dispatch.notice_id, [0, 1, 20, 39])
    Dispatcher(db.session, sendgrid).send_deliveries()
    [alert] = db.session.scalars(select(OutgoingMail))
    assert alert.to == approver.email and alert.template == "dispatch_failed"
    assert alert.context["count"] == 4
    assert alert.context["reason"].startswith("the provider refused 4 addresses: ")
    for address in bad.values():
        assert f"{address}: HTTP 400: {INVALID_ADDRESS}" in alert.context["reason"]
    assert status_counts(db.session, dispatch.notice_id) == {"sent": 36, "failed": 4}


def test_a_whole_batch_of_refused_addresses_fails_without_sending_anyone_twice(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 4)
    give_bad_addresses(dispatch.notice_id, [0, 1, 2, 3])
    Dispatcher(db.session, sendgrid).drain()
    assert fake.delivery_ids() == []
    assert status_counts(db.session, dispatch.notice_id) == {"failed": 4}
    # 1 request of 4, 2 of 2, 4 of 1.
    assert [r.recipients for r in fake.requests] == [4, 2, 1, 1, 2, 1, 1]
