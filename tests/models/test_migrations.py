"""The migrations build exactly the schema that the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from registry.extensions import db
from tests.conftest import dispose, migrated_app


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
