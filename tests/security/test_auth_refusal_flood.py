"""Issue 9, item 8: refused sign-in attempts cannot flood the append-only audit log.

Each refused attempt used to write its own audit row, with whatever the client typed as the actor.
Now a (kind, address, account, window) counter is updated atomically; the audit log gets one row
for the window's first refusal and one summary when the window is over.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.domain import throttle
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import AuditEntry, RefusalWindow
from registry.services import audit
from tests.conftest import csrf_token

ADDRESS = "203.0.113.66"
LONG_GARBAGE = "mallory\x07\u202e" + "x" * 5000 + "@example.com"


def rows(action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.session.scalars(query))


def test_a_thousand_refused_attempts_write_a_constant_number_of_audit_rows(app, client, monkeypatch):
    token = csrf_token(client)

    def attempt(email: str) -> int:
        return client.post("/auth/login", environ_base={"REMOTE_ADDR": ADDRESS}, data={
            "csrf_token": token, "email": email, "password": "wrong guess!!"}).status_code

    # Ten checked guesses at ten names use up the address's limit; each is audited (they were checked).
    assert [attempt(f"person{index}@example.com") for index in range(10)] == [401] * 10
    codes = [attempt("victim@example.com") for _ in range(600)] + [attempt(LONG_GARBAGE) for _ in range(400)]
    assert codes == [429] * 1000
    db.session.expire_all()
    assert len(rows("auth.login.failed")) == 10
    refused = rows("auth.login.refused")
    assert len(refused) == 2  # one per (address, account, window), not one per attempt
    for row in refused:
        assert row.actor.startswith(audit.UNTRUSTED) and len(row.actor) <= len(audit.UNTRUSTED) + 65
        assert row.after["untrusted_input"] is True and row.after["ip"] == ADDRESS
        assert "\x07" not in row.actor and "\u202e" not in row.actor
    counts = {window.claimed_account: window.count for window in db.session.scalars(select(RefusalWindow))}
    assert sorted(counts.values()) == [400, 600]
    assert counts["victim@example.com"] == 600

    # Once the window is over, the next login POST writes one summary per window, with its count.
    later = now_utc() + throttle.REFUSAL_WINDOW + throttle.REFUSAL_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("registry.web.auth.now_utc", lambda: later)
    assert attempt("victim@example.com") == 429  # the address is still over its limit
    db.session.expire_all()
    summaries = rows("auth.login.refused.summary")
    assert sorted(row.after["refused"] for row in summaries) == [400, 600]
    assert len(rows()) == 10 + 2 + 2 + 1  # the last refusal opened a new window: one more row
    assert db.session.scalar(select(func.count()).where(RefusalWindow.closed_at.is_(None))) == 1
    assert audit.verify(db.session).ok


def test_concurrent_refusals_are_all_counted_and_audited_once(app):
    engine = db.engine
    now = now_utc()
    threads, each = 8, 40
    start = threading.Barrier(threads)

    def refuse(_worker: int) -> list[int]:
        counts = []
        with Session(engine) as session:
            start.wait()
            for _ in range(each):
                counts.append(audit.record_refusal(session, kind="login", ip=ADDRESS,
                                                   claimed_account="victim@example.com", now=now))
                session.commit()
        return counts

    with ThreadPoolExecutor(threads) as pool:
        seen = [count for counts in pool.map(refuse, range(threads)) for count in counts]
    assert sorted(seen) == list(range(1, threads * each + 1))  # no count lost, none twice
    [window] = db.session.scalars(select(RefusalWindow)).all()
    assert window.count == threads * each
    assert len(rows("auth.login.refused")) == 1
    assert audit.close_refusal_windows(db.session, now + timedelta(hours=1)) == 1
    assert audit.close_refusal_windows(db.session, now + timedelta(hours=1)) == 0  # closed once
    [summary] = rows("auth.login.refused.summary")
    assert summary.after["refused"] == threads * each
    assert audit.verify(db.session).ok


def test_a_window_still_open_is_not_summarised(app):
    now = now_utc()
    audit.record_refusal(db.session, kind="totp", ip=ADDRESS, claimed_account="a@example.com", now=now)
    audit.record_refusal(db.session, kind="totp", ip=ADDRESS, claimed_account="a@example.com", now=now)
    assert audit.close_refusal_windows(db.session, now + timedelta(minutes=1)) == 0
    assert rows("auth.totp.refused.summary") == []
