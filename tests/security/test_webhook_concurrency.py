"""Issue 9, item 22: concurrent signed posts to the Event Webhook deadlocked (500s, lost suppressions) and
an older event overwrote a newer one. Applied here through the worker (`flask notices dispatch --once`)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

from sqlalchemy import func, select

from registry.extensions import db
from registry.models import ChangeSet, Delivery, Suppression, WebhookEvent
from tests.notify.factories import notice_with_deliveries
from tests.web import test_webhooks
from tests.web.test_webhooks import URL, signed

hook = test_webhooks.hook

POSTERS = 8
BATCH = 20


def planned_events(rows: list[Delivery], second: int) -> tuple[list[dict], set[str]]:
    """processed, deferred and delivered in the same second (SendGrid stamps whole seconds); every fifth
    address bounces a second later."""
    events, bounced = [], set()
    for d in rows:
        common = {"email": d.email, "delivery_id": str(d.id), "sg_message_id": f"m{d.id}.filter0001.1.0"}
        kinds = [("processed", second), ("deferred", second), ("delivered", second)]
        if d.id % 5 == 0:
            kinds.append(("bounce", second + 1))
            bounced.add(d.email)
        events += [common | {"event": kind, "timestamp": at, "sg_event_id": f"{kind}-{d.id}"}
                   for kind, at in kinds]
    return events, bounced


def post_concurrently(app, bodies: list[str]) -> Counter:
    statuses: Counter = Counter()
    lock = threading.Lock()

    def poster(share: list[str]) -> None:
        client = app.test_client()
        for body in share:
            status = client.post(URL, data=body, headers=signed(body)).status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=poster, args=(bodies[i::POSTERS],)) for i in range(POSTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return statuses


def test_concurrent_posters_get_no_error_and_every_event_is_applied_once_in_order(hook, app, runner):
    dispatch = notice_with_deliveries(db.session, 150, prefix="hook")
    db.session.execute(Delivery.__table__.update().values(status="sending"))
    db.session.commit()
    rows = list(db.session.scalars(select(Delivery).order_by(Delivery.id)))
    events, bounced = planned_events(rows, second=1_780_000_000)
    expected = {d.email: ("sent", "bounce" if d.email in bounced else "delivered") for d in rows}
    # Every event twice (SendGrid retries), shuffled, so each address's events race across posters.
    posted = events * 2
    random.Random(9).shuffle(posted)
    bodies = [json.dumps(posted[i:i + BATCH]) for i in range(0, len(posted), BATCH)]

    statuses = post_concurrently(app, bodies)

    assert statuses == Counter({200: len(bodies)})
    result = runner.invoke(args=["notices", "dispatch", "--once"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == len(events)
    assert set(db.session.scalars(select(Suppression.email))) == bounced
    final = {d.email: (d.status, d.last_event) for d in db.session.scalars(select(Delivery))}
    assert final == expected
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is not None
