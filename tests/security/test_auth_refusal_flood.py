"""Issue 9, item 8: refused sign-in attempts cannot flood the append-only audit log.

Each refused attempt used to write its own audit row, with whatever the client typed as the actor.
Now a counter per (refusing limit, what it limits, window) is updated atomically; the audit log gets
one row for the window's first refusal and one summary when the window is over.
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
    # The attacker's text first (it becomes the window's recorded name), then a new name at every attempt.
    codes = [attempt(LONG_GARBAGE)] + [attempt(f"victim{index}@example.com") for index in range(999)]
    assert codes == [429] * 1000
    db.session.expire_all()
    assert len(rows("auth.login.failed")) == 10
    [refused] = rows("auth.login.refused")  # one for the address's window, not one per attempt
    assert refused.actor.startswith(audit.UNTRUSTED) and len(refused.actor) == len(audit.UNTRUSTED) + 65
    assert "\x07" not in refused.actor and "\u202e" not in refused.actor
    assert refused.after["untrusted_input"] is True and refused.after["ip"] == ADDRESS
    assert refused.after["limit"] == "address"
    [window] = db.session.scalars(select(RefusalWindow)).all()
    assert (window.count, window.scope, window.ip) == (1000, "address", ADDRESS)

    # Once the window is over, the next login POST writes one summary with the count.
    later = now_utc() + throttle.REFUSAL_WINDOW + throttle.REFUSAL_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("registry.web.auth.now_utc", lambda: later)
    assert attempt("victim@example.com") == 429  # the address is still over its limit
    db.session.expire_all()
    [summary] = rows("auth.login.refused.summary")
    assert summary.after["refused"] == 1000 and summary.after["limit"] == "address"
    assert len(rows()) == 10 + 1 + 1 + 1  # the last refusal opened a new window: one more row
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
                counts.append(audit.record_refusal(session, kind="login", scope="account_address",
                                                   ip=ADDRESS, claimed_account="victim@example.com", now=now))
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
    for _ in range(2):
        audit.record_refusal(db.session, kind="login", scope="address", ip=ADDRESS,
                             claimed_account="a@example.com", now=now)
    assert audit.close_refusal_windows(db.session, now + timedelta(minutes=1)) == 0
    assert rows("auth.login.refused.summary") == []


def test_an_account_under_attack_from_many_addresses_is_one_window(app):
    now = now_utc()
    for index in range(200):
        audit.record_refusal(db.session, kind="login", scope="account", ip=f"198.51.100.{index}",
                             claimed_account="victim@example.com", now=now)
    [window] = db.session.scalars(select(RefusalWindow)).all()
    assert (window.count, window.ip) == (200, "198.51.100.0")  # the first address is kept
    assert len(rows("auth.login.refused")) == 1


def test_refused_codes_name_the_signed_in_account(app, make_user):
    approver = make_user("approver")
    now = now_utc()
    for _ in range(3):
        audit.record_refusal(db.session, kind="totp", scope="account", ip=ADDRESS,
                             claimed_account=approver.email, user_id=approver.id, now=now)
    audit.close_refusal_windows(db.session, now + timedelta(hours=1))
    first, summary = rows()
    assert (first.action, first.actor, first.actor_id) == ("auth.totp.refused", approver.email, approver.id)
    assert first.after["untrusted_input"] is False
    assert (summary.action, summary.actor, summary.after["refused"]) == (
        "auth.totp.refused.summary", approver.email, 3)


def test_the_cli_closes_ended_windows_when_attempts_stopped(app, runner):
    long_ago = now_utc() - timedelta(hours=2)
    for index in range(150):  # more than one sweep batch
        for _ in range(2):
            audit.record_refusal(db.session, kind="login", scope="address", ip=f"192.0.2.{index}",
                                 claimed_account="x@example.com", now=long_ago)
    db.session.commit()
    result = runner.invoke(args=["audit", "close-refusals"])
    assert result.exit_code == 0 and "150 refusal window(s) closed" in result.output
    db.session.expire_all()
    assert len(rows("auth.login.refused.summary")) == 150
    again = runner.invoke(args=["audit", "close-refusals"]).output
    assert again.startswith("0 refusal") and "; 0 counter(s)" in again
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    assert audit.forget_closed_windows(db.session, now_utc() + timedelta(days=6)) == 0
    assert audit.forget_closed_windows(db.session, now_utc() + timedelta(days=7, minutes=1)) == 150
    assert rows("auth.login.refused.summary")  # the audit rows stay, of course
