"""Issue 9, item 7: concurrent appends never fork the audit hash chain, on SQLite as on PostgreSQL.

On SQLite two writers used to read the same last row (pysqlite runs a SELECT outside any
transaction), so 120 concurrent failed logins left `flask audit verify` reporting a broken row.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.extensions import db
from registry.models import AuditEntry
from registry.services import audit
from tests.conftest import csrf_token

THREADS, ROWS_EACH = 12, 15


def test_many_threads_appending_keep_one_chain(app):
    engine = db.engine
    start = threading.Barrier(THREADS)

    def append(worker: int) -> None:
        with Session(engine) as session:
            start.wait()
            for index in range(ROWS_EACH):
                # A read first, as a request does before it audits: the append must not trust it.
                session.scalar(select(func.count()).select_from(AuditEntry))
                audit.record(session, actor=f"worker{worker}@example.com", action="test.race",
                             object_type="thing", object_id=index)
                session.commit()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(append, range(THREADS)))
    result = audit.verify(db.session)
    assert (result.ok, result.count) == (True, THREADS * ROWS_EACH), result


def test_concurrent_failed_logins_keep_one_chain(app, runner, make_user):
    make_user("editor", email="victim@example.com")
    attempts = 24
    start = threading.Barrier(attempts)

    def attempt(index: int) -> int:
        client = app.test_client()
        token = csrf_token(client)
        start.wait()
        # Different accounts and addresses: no limit refuses any of them, every one is audited.
        return client.post("/auth/login", environ_base={"REMOTE_ADDR": f"198.51.100.{index}"},
                           data={"csrf_token": token, "email": f"guess{index}@example.com",
                                 "password": "wrong password!"}).status_code

    with ThreadPoolExecutor(attempts) as pool:
        codes = list(pool.map(attempt, range(attempts)))
    assert codes == [401] * attempts
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == attempts
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and f"OK: {attempts} audit row(s)" in verified.output, verified.output
