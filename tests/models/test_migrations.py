"""The migrations build exactly the schema that the models describe."""

import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from registry import create_app
from registry.extensions import db
from tests.conftest import dispose, make_settings, migrated_app
from tests.notify.factories import notice_with_deliveries

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def upgraded(databases, tmp_path_factory):
    """A database built by `flask db upgrade` alone, as in production."""
    app = migrated_app(databases.new(), tmp_path_factory.mktemp("migrated"))
    with app.app_context():
        yield app
    dispose(app)


def test_upgrade_head_matches_models(upgraded):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_every_model_table_exists(upgraded):
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_the_audit_log_is_append_only_on_postgresql(upgraded):
    """The migration's trigger refuses UPDATE, DELETE and TRUNCATE; appending still works."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on the application")
    from registry.services import audit

    audit.record(db.session, actor="a@example.com", action="test.append", object_type="t", object_id=1)
    db.session.commit()
    for statement in ("UPDATE audit_entries SET actor = 'mallory'", "DELETE FROM audit_entries",
                      "TRUNCATE audit_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
    audit.record(db.session, actor="b@example.com", action="test.append", object_type="t", object_id=2)
    db.session.commit()
    result = audit.verify(db.session)
    assert result.count == 2 and result.ok


@pytest.mark.parametrize("chunk", ["1", "2", "5000"])
def test_sent01_moves_each_delivery_values_to_the_request_that_last_carried_it(databases, tmp_path, chunk):
    """Proof of notice survives the upgrade: a delivery's message and values, kept on the delivery
    before sent01, are found on its last request after it (the one of its claim token whose range holds
    it, the later of two after a split); a delivery with values and no recorded request gets one; and
    the downgrade puts every value back on its delivery. Read one, two or all deliveries at a time
    (a request is written once the deliveries read have passed its range)."""
    from flask_migrate import downgrade

    from registry.services import proof

    app = create_app(make_settings(databases.new(), tmp_path))
    app.config["TESTING"] = True
    with app.app_context():
        upgrade(revision="dora01")
        sha = "c" * 64
        db.session.execute(text(
            "INSERT INTO message_bodies (sha256, subject, text, html, created_at) "
            "VALUES (:sha, 's', 't', 'h', :at)"), {"sha": sha, "at": NOW})
        notice_id = notice_with_deliveries(db.session, 4, prefix="migrated").notice_id
        ids = list(db.session.scalars(text("SELECT id FROM deliveries ORDER BY id")))
        rows = list(zip(ids, ("t1", "t1", "t1", None), strict=True))
        for delivery_id, token in rows:
            db.session.execute(text(
                "UPDATE deliveries SET status = 'sent', claim_token = :token, sent_at = :at, "
                "message_sha256 = :sha, substitutions = :s, headers = :h WHERE id = :id"),
                {"id": delivery_id, "token": token, "at": NOW, "sha": sha,
                 "s": f'{{"-unsubscribe_url-": "u{delivery_id}"}}',
                 "h": f'{{"List-Unsubscribe": "<u{delivery_id}>"}}'})
        # The first request (the first three) was split after a 400: its halves went out after it.
        for first, last in ((0, 2), (0, 0), (1, 2)):
            db.session.execute(text(
                "INSERT INTO send_attempts (claim_token, notice_id, first_delivery_id, last_delivery_id, "
                "recipients, started_at) VALUES ('t1', :notice, :first, :last, :n, :at)"),
                {"notice": notice_id, "first": ids[first], "last": ids[last], "n": last - first + 1,
                 "at": NOW})
        db.session.commit()

        upgrade(revision="sent01", x_arg=[f"chunk={chunk}"])
        db.session.remove()
        for delivery_id, _token in rows:
            _delivery, body, values = proof.sent_message(db.session, delivery_id)
            assert body.sha256 == sha
            assert values == {"substitutions": {"-unsubscribe_url-": f"u{delivery_id}"},
                              "headers": {"List-Unsubscribe": f"<u{delivery_id}>"}}
        carried = [_json(values) for values in db.session.scalars(
            text("SELECT personalizations FROM send_attempts ORDER BY id"))]
        assert carried[0] is None  # its recipients' values were those of the halves
        assert set(carried[1]) == {str(ids[0])} and set(carried[2]) == {str(ids[1]), str(ids[2])}
        assert set(carried[3]) == {str(ids[3])}  # made for the delivery without a recorded request
        db.session.commit()

        downgrade(revision="dora01")
        back = db.session.execute(text(
            "SELECT id, message_sha256, substitutions FROM deliveries ORDER BY id")).all()
        assert [(r[0], r[1], _json(r[2])) for r in back] == [
            (i, sha, {"-unsubscribe_url-": f"u{i}"}) for i, _token in rows]
        db.session.commit()
        upgrade()
    dispose(app)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
