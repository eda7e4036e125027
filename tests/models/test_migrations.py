"""The migrations build exactly the schema that the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
