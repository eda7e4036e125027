"""Fixtures: the app on SQLite and on PostgreSQL, clients, the CLI runner, and a mail guard."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from registry import create_app
from registry.extensions import db
from registry.settings import Settings

POSTGRES_URL = os.environ.get(
    "REGISTRY_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_server() -> psycopg.Connection:
    url = make_url(POSTGRES_URL)
    try:
        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            dbname=url.database, connect_timeout=3, autocommit=True,
        )
    except psycopg.OperationalError as error:
        message = (
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({error}). Start it, or point "
            "REGISTRY_TEST_DATABASE_URL at a server where the user may create databases."
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


class Databases:
    """Throw-away databases on one backend, dropped when the session ends."""

    def __init__(self, backend: str, folder: Path):
        self.backend = backend
        self.folder = folder
        self.created: list[str] = []
        self.server = _postgres_server() if backend == "postgresql" else None

    def new(self) -> str:
        name = f"registry_test_{uuid.uuid4().hex[:12]}"
        if self.server is None:
            return f"sqlite:///{self.folder / name}.db"
        self.server.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.server is None:
            return
        for name in self.created:
            self.server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.server.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def databases(request, tmp_path_factory) -> Iterator[Databases]:
    dbs = Databases(request.param, tmp_path_factory.mktemp(request.param))
    yield dbs
    dbs.drop_all()


def make_settings(database_url: str, instance: Path, **overrides) -> Settings:
    return Settings(
        env="test", secret_key="test-secret-" + "x" * 40, database_url=database_url,
        instance_path=instance, mail_sender="recording", page_cache_seconds=0.0,
        base_url="http://localhost",
    ).with_overrides(**overrides)


def migrated_app(database_url: str, instance: Path) -> Flask:
    app = create_app(make_settings(database_url, instance))
    app.config["TESTING"] = True
    with app.app_context():
        upgrade()
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def empty_app(databases, tmp_path_factory) -> Iterator[Flask]:
    """An app on a database migrated to head; tests that use it clean up after themselves."""
    app = migrated_app(databases.new(), tmp_path_factory.mktemp("instance"))
    yield app
    dispose(app)


@pytest.fixture
def app(empty_app: Flask) -> Iterator[Flask]:
    with empty_app.app_context():
        yield empty_app
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(delete(table))
        db.session.commit()
        db.session.remove()
    empty_app.extensions["page_cache"].clear()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def demo_app(databases, tmp_path_factory) -> Iterator[Flask]:
    """An app with the demo content loaded once per backend; its tests only read."""
    from registry.domain.clock import now_utc
    from registry.services import demo

    app = migrated_app(databases.new(), tmp_path_factory.mktemp("demo-instance"))
    with app.app_context():
        demo.load(db.session, now_utc())
        db.session.commit()
        db.session.remove()
    yield app
    dispose(app)


@pytest.fixture
def demo_client(demo_app: Flask):
    return demo_app.test_client()


@pytest.fixture(autouse=True)
def no_real_sendgrid(monkeypatch):
    """Fail any test whose code tries to reach a mail provider beyond this machine."""
    from python_http_client.client import Client

    original = Client._make_request

    def guarded(self, opener, request, timeout=None):
        host = request.host.split(":")[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to reach {host}; use the fake SendGrid")
        return original(self, opener, request, timeout=timeout)

    monkeypatch.setattr(Client, "_make_request", guarded)
