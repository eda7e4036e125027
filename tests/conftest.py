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
from registry.extensions import db, limiter
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
        # A throw-away database need not wait for each commit to reach the disk.
        self.server.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
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
        base_url="http://localhost", ratelimit_allow_memory=True,
    ).with_overrides(**overrides)


def migrated_app(database_url: str, instance: Path, **overrides) -> Flask:
    app = create_app(make_settings(database_url, instance, **overrides))
    app.config["TESTING"] = True
    with app.app_context():
        upgrade()
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


def fresh_app(database_url: str, instance: Path, **overrides) -> Flask:
    """An app whose tables come from the models (the migrations are tested on their own)."""
    app = create_app(make_settings(database_url, instance, **overrides))
    app.config["TESTING"] = True
    with app.app_context():
        db.create_all()
    return app


@pytest.fixture(scope="session")
def empty_app(databases, tmp_path_factory) -> Iterator[Flask]:
    """An app on an empty database; tests that use it clean up after themselves."""
    app = fresh_app(databases.new(), tmp_path_factory.mktemp("instance"))
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
    limiter.reset()


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

    app = fresh_app(databases.new(), tmp_path_factory.mktemp("demo-instance"))
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


PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_user(app):
    """A staff account; approvers and admins get a TOTP secret unless told otherwise."""
    import pyotp

    from registry.models import User
    from registry.services import accounts

    def make(role: str = "editor", email: str | None = None, *, password: str = PASSWORD,
             with_totp: bool = True, enabled: bool = True) -> User:
        user = User(email=email or f"{role}-{uuid.uuid4().hex[:6]}@example.com", role=role,
                    password_hash=accounts.hash_password(password), is_enabled=enabled,
                    totp_secret=pyotp.random_base32() if with_totp and role != "editor" else None)
        db.session.add(user)
        db.session.commit()
        return user

    return make


def csrf_token(client) -> str:
    """A valid CSRF token for `client`'s session, as Flask-WTF would put in a form."""
    import secrets

    from itsdangerous import URLSafeTimedSerializer

    raw = secrets.token_hex(20)
    with client.session_transaction() as session:
        session["csrf_token"] = raw
    return URLSafeTimedSerializer(client.application.secret_key, salt="wtf-csrf-token").dumps(raw)


@pytest.fixture
def login(app):
    """login(user) -> a new test client signed in as `user` (second factor done unless told)."""
    from registry.services import accounts

    def sign_in(user, *, verified: bool = True):
        client = app.test_client()
        token = accounts.start_session(db.session, user, is_verified=verified)
        db.session.commit()
        with client.session_transaction() as session:
            session["_user_id"] = token
            session["_fresh"] = True
        client.csrf = lambda: csrf_token(client)
        return client

    return sign_in
