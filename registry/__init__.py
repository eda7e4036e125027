"""The sub-processor registry: create_app builds the Flask application from explicit settings."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from registry.extensions import csrf, db, limiter, migrate
from registry.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Flask:
    # Files this process creates (the SQLite database with its TOTP secrets, the -wal and -shm files,
    # the mail outbox's .eml files) are for this user only.
    os.umask(0o077)
    settings = settings or Settings.from_env()
    settings.validate()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    _restrict_sqlite_files(settings.database_url)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        REGISTRY=settings,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        # __Host- cookies must be Secure, host-only and path /, so only production can use the prefix.
        SESSION_COOKIE_NAME="__Host-session" if settings.is_production else "session",
        PERMANENT_SESSION_LIFETIME=12 * 60 * 60,
        REMEMBER_COOKIE_DURATION=0,
        WTF_CSRF_TIME_LIMIT=12 * 60 * 60,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.json.sort_keys = False
    if settings.proxy_count:
        # Behind nginx every request comes from 127.0.0.1; login throttling needs the client's address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count)

    import registry.models  # noqa: F401  (registers every model before migrations look)

    db.init_app(app)
    if settings.database_url.startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)

    from registry.web import init_app as init_web

    init_web(app)

    from registry.cli import init_app as init_cli

    init_cli(app)
    return app


def _engine_options(database_url: str) -> dict:
    if database_url.startswith("sqlite"):
        # The web process and the worker share the file: wait for a lock instead of failing.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _restrict_sqlite_files(database_url: str) -> None:
    """A database file created before the umask was set (by an older version) is closed to others too."""
    if not database_url.startswith("sqlite:///"):
        return
    database = Path(database_url.removeprefix("sqlite:///"))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _sqlite_pragmas(connection, _record) -> None:
    """WAL lets readers go on while the worker writes."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
