"""The sub-processor registry: create_app builds the Flask application from explicit settings."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from registry.extensions import db, migrate
from registry.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.validate()
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        REGISTRY=settings,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
    )
    app.json.sort_keys = False

    import registry.models  # noqa: F401  (registers every model before migrations look)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))

    from registry.web import init_app as init_web

    init_web(app)

    from registry.cli import init_app as init_cli

    init_cli(app)
    return app
