"""Issue 9, item 22: an older event arriving after a newer one moved a delivery back (`deferred` kept
after `delivered`), and the proof of notice showed it as the latest event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import Delivery
from registry.services import proof
from tests.notify.factories import notice_with_deliveries
from tests.web import test_webhooks
from tests.web.test_webhooks import URL, signed

hook = test_webhooks.hook
SECOND = 1_780_000_000


@pytest.mark.parametrize("posts", [
    # One post each, newest first: same second (SendGrid's whole seconds), then strictly older.
    [("delivered", SECOND), ("deferred", SECOND), ("processed", SECOND)],
    [("delivered", SECOND + 5), ("deferred", SECOND + 1), ("processed", SECOND)],
    [("processed", SECOND), ("delivered", SECOND + 5), ("deferred", SECOND + 1)],
])
def test_an_older_event_posted_after_a_newer_one_never_moves_the_delivery_back(hook, app, runner, posts):
    dispatch = notice_with_deliveries(db.session, 1, prefix="order")
    delivery = db.session.scalar(select(Delivery))
    delivery.status = "sending"
    db.session.commit()
    common = {"email": delivery.email, "delivery_id": str(delivery.id), "sg_message_id": "m1.filter0001.1.0"}
    for kind, at in posts:
        body = json.dumps([common | {"event": kind, "timestamp": at, "sg_event_id": f"{kind}-1"}])
        assert hook.post(URL, data=body, headers=signed(body)).status_code == 200
        # Applied one post at a time, as a worker running beside the site would.
        assert runner.invoke(args=["notices", "dispatch", "--once"]).exit_code == 0
    delivered_at = next(at for kind, at in posts if kind == "delivered")
    # What the proof of notice says for this recipient.
    [row] = proof.export_rows(db.session, dispatch.change_set_id)
    assert (row["status"], row["last_event"]) == ("sent", "delivered")
    assert row["last_event_at"] == datetime.fromtimestamp(delivered_at, UTC).isoformat()
