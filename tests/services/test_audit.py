"""The audit log's hash chain: recording, verification, tampering, and PostgreSQL's append-only trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from registry.extensions import db
from registry.models import AuditEntry
from registry.services import audit


def add_rows(count: int) -> list[AuditEntry]:
    return [audit.record(db.session, actor=f"person{index}@example.com", action="test.event",
                         object_type="thing", object_id=index, before={"n": index}, after={"n": index + 1})
            for index in range(count)]


def test_rows_chain_from_genesis(app):
    first, second = add_rows(2)
    assert first.prev_hash == audit.GENESIS and second.prev_hash == first.hash
    assert first.hash == audit.entry_hash(audit.GENESIS, first.at, first.actor, first.action,
                                          first.object_type, first.object_id, first.before, first.after)


def test_an_empty_log_verifies(app):
    assert audit.verify(db.session) == audit.VerifyResult(ok=True, count=0)


def test_an_intact_log_verifies_after_a_round_trip(app):
    add_rows(5)
    # Awkward values: non-UTC times, dates inside the JSON, NUL bytes, over-long fields.
    audit.record(db.session, actor="x\x00" * 400, action="a" * 200, object_type="t", object_id="i" * 100,
                 at=datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Warsaw")),
                 after={"when": datetime(2026, 1, 1, tzinfo=UTC), "list": (1, 2), "nul": "a\x00b"})
    db.session.commit()
    db.session.expire_all()
    result = audit.verify(db.session, batch=2)
    assert result.ok and result.count == 6


def test_tampering_names_the_changed_row(app):
    rows = add_rows(5)
    db.session.commit()
    victim = rows[2].id
    db.session.execute(text("UPDATE audit_entries SET after = :value WHERE id = :id"),
                       {"value": '{"n": 999}', "id": victim})
    db.session.commit()
    db.session.expire_all()
    result = audit.verify(db.session)
    assert (result.ok, result.broken_id, result.count) == (False, victim, 2)
    assert "changed" in result.problem


def test_a_removed_row_breaks_the_link_of_the_next(app):
    rows = add_rows(4)
    db.session.commit()
    db.session.execute(text("DELETE FROM audit_entries WHERE id = :id"), {"id": rows[1].id})
    db.session.commit()
    result = audit.verify(db.session)
    assert (result.ok, result.broken_id) == (False, rows[2].id)
    assert "removed" in result.problem


def test_a_rehashed_row_still_breaks_the_next_link(app):
    rows = add_rows(3)
    db.session.commit()
    forged = audit.entry_hash(rows[1].prev_hash, rows[1].at, "mallory", rows[1].action, rows[1].object_type,
                              rows[1].object_id, rows[1].before, rows[1].after)
    db.session.execute(text("UPDATE audit_entries SET actor = 'mallory', hash = :hash WHERE id = :id"),
                       {"hash": forged, "id": rows[1].id})
    db.session.commit()
    db.session.expire_all()
    assert audit.verify(db.session).broken_id == rows[2].id


def test_search_filters(app):
    add_rows(3)
    audit.record(db.session, actor="Admin@Example.com", action="auth.login.success", object_type="user",
                 object_id=7, at=datetime.now(UTC) - timedelta(days=3))
    db.session.commit()

    def found(**filters):
        return [row.action for row in db.session.scalars(audit.search(audit.Filters(**filters)))]

    assert found(action="auth.") == ["auth.login.success"]
    assert found(action="auth%") == []  # LIKE wildcards are literal
    assert found(actor="admin@") == ["auth.login.success"]
    assert found(object_type="thing", object_id="1") == ["test.event"]
    assert len(found(since=datetime.now(UTC) - timedelta(days=1))) == 3
    assert found(until=datetime.now(UTC) - timedelta(days=1)) == ["auth.login.success"]



def test_a_concurrent_append_waits_for_the_first_transaction(app):
    """PostgreSQL: the advisory lock; SQLite: BEGIN IMMEDIATE. Either way the second append waits."""
    import threading

    from sqlalchemy.orm import Session

    first, second = Session(db.engine), Session(db.engine)
    try:
        audit.record(first, actor="a@example.com", action="test.first", object_type="t", object_id=1)
        done = threading.Event()

        def append_second() -> None:
            # Blocks on the lock until `first` commits, then links to its row.
            audit.record(second, actor="b@example.com", action="test.second", object_type="t", object_id=2)
            second.commit()
            done.set()

        worker = threading.Thread(target=append_second)
        worker.start()
        assert not done.wait(0.5), "the second append did not wait for the first transaction"
        first.commit()
        worker.join(timeout=10)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    result = audit.verify(db.session)
    assert result.ok and result.count == 2
