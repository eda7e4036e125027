"""Issue 9 items 6 and 21: the worker survives lost connections and lock timeouts.

A terminated PostgreSQL session or an SQLite write lock held past the busy timeout made the worker exit;
an exit between a 202 and its commit cost 1,000-2,000 flagged duplicates. Now the database work is
rolled back and done again on a fresh connection, so the 202 is recorded and nobody is sent twice.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from registry.extensions import db
from registry.models import Delivery
from registry.notify.dispatch import Dispatcher, Options
from tests.notify import conftest as notify_fixtures
from tests.notify.factories import notice_with_deliveries, status_counts
from tests.notify.test_worker import ROOT, worker_env

# The fake SendGrid over HTTP and the real client pointed at it, as in tests/notify.
fake, sendgrid = notify_fixtures.fake, notify_fixtures.sendgrid


class AfterEachAnswer:
    """A sender that does something to the database between the provider's 202 and its commit."""

    def __init__(self, sender, act):
        self.sender, self.act, self.times = sender, act, 0

    def send(self, batch, recipients):
        result = self.sender.send(batch, recipients)
        self.act()
        self.times += 1
        return result


def postgres_dsn(app) -> str:
    url = make_url(app.config["REGISTRY"].database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def terminate_other_sessions(dsn: str) -> int:
    """What an administrator's pg_terminate_backend (or a failover) does to the worker's connections."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        return len(connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


def assert_each_sent_once(fake, notice_id: int) -> None:
    found = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == notice_id)))
    db.session.commit()
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in found})
    assert {d.status for d in found} == {"sent"} and not any(d.is_resent for d in found)


def test_a_terminated_postgresql_session_between_a_202_and_its_commit(app, fake, sendgrid, databases):
    if databases.backend != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    dispatch = notice_with_deliveries(db.session, 600)
    dsn = postgres_dsn(app)
    recordings: list[int] = []
    terminated: list[int] = []

    def terminate_before_recording(connection, _cursor, statement, _parameters, _context, _many) -> None:
        # The session about to record a 202 dies (pool_pre_ping cannot save an open transaction); the
        # worker's second try, on a new connection, is left alone.
        if statement.startswith("UPDATE deliveries SET status=") and "provider_message_id" in statement:
            recordings.append(1)
            if len(recordings) % 2:
                pid = connection.connection.dbapi_connection.info.backend_pid
                with psycopg.connect(dsn, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                terminated.append(pid)

    event.listen(db.engine, "before_cursor_execute", terminate_before_recording)
    try:
        stats = Dispatcher(db.session, sendgrid, Options(batch_size=200, request_size=100)).drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", terminate_before_recording)
    assert len(terminated) == 6 and len(recordings) == 12
    assert stats.sent == 600 and stats.database_errors == 6 and stats.resent == 0
    assert_each_sent_once(fake, dispatch.notice_id)


def test_an_sqlite_write_lock_held_past_the_busy_timeout(app, fake, sendgrid, databases):
    if databases.backend != "sqlite":
        pytest.skip("SQLite's single writer lock")
    dispatch = notice_with_deliveries(db.session, 300)
    path = make_url(app.config["REGISTRY"].database_url).database

    def short_busy_timeout(connection, _record) -> None:
        connection.execute("PRAGMA busy_timeout=200")

    def hold_the_write_lock() -> None:
        # Another process's slow write transaction: 1.5 s, more than seven busy timeouts.
        other = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        threading.Timer(1.5, lambda: (other.execute("ROLLBACK"), other.close())).start()

    event.listen(db.engine, "connect", short_busy_timeout)
    db.engine.dispose()
    try:
        sender = AfterEachAnswer(sendgrid, hold_the_write_lock)
        stats = Dispatcher(db.session, sender, Options(batch_size=200, request_size=100)).drain()
    finally:
        db.session.remove()
        event.remove(db.engine, "connect", short_busy_timeout)
        db.engine.dispose()
    assert sender.times == 3
    assert stats.sent == 300 and stats.database_errors >= 3 and stats.resent == 0
    assert_each_sent_once(fake, dispatch.notice_id)


def test_the_worker_process_keeps_running_through_database_outages(app, fake, databases):
    """Twice during a dispatch, the database refuses connections for 2 s and every session is
    terminated (a restart or a failover): the worker process waits it out and goes on."""
    if databases.backend != "postgresql":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    dispatch = notice_with_deliveries(db.session, 1000)
    db.session.remove()
    name = make_url(app.config["REGISTRY"].database_url).database
    fake.delay = 0.02
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "notices", "dispatch", "--batch-size", "50",
         "--client-timeout", "0.5", "--sending-timeout", "3", "--poll", "0.2"],
        cwd=ROOT, env=worker_env(app, fake), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outages = 0
    try:
        deadline = time.monotonic() + 120
        while len(set(fake.delivery_ids())) < 1000:
            assert worker.poll() is None, worker.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the worker stopped sending"
            if outages < 2 and fake.count() >= 300 * (outages + 1):
                databases.server.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                databases.server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = %s", (name,))
                time.sleep(2.0)
                databases.server.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
                outages += 1
            time.sleep(0.05)
        time.sleep(1.0)  # the last results are recorded
        assert worker.poll() is None, "the worker exited"
    finally:
        databases.server.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err[-3000:]
    assert outages == 2 and err.count("database unavailable") >= 2
    assert status_counts(db.session, dispatch.notice_id) == {"sent": 1000}
    assert_each_sent_once(fake, dispatch.notice_id)
