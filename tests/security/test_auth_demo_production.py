"""Issue 9, item 4: `flask demo load` refuses production (its admin's password and TOTP secret are public)."""

from __future__ import annotations

from sqlalchemy import func, select

from registry import create_app
from registry.extensions import db
from registry.models import AuditEntry, User
from tests.conftest import make_settings


def production_app(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'prod.db'}", tmp_path / "instance",
                                   env="production", base_url="https://trust.example.com"))
    with app.app_context():
        db.create_all()
    return app


def test_demo_load_is_refused_in_production(app, tmp_path):
    production = production_app(tmp_path)
    with production.app_context():
        result = production.test_cli_runner().invoke(args=["demo", "load"])
        assert result.exit_code != 0
        assert "refused in production" in result.output
        # Nothing was written: no account with the public demo credentials exists.
        assert db.session.scalar(select(func.count()).select_from(User)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0
        refused = production.test_cli_runner().invoke(args=["demo", "load", "--if-empty"])
        assert refused.exit_code != 0 and "refused in production" in refused.output
        db.session.remove()
        db.engine.dispose()


def test_demo_load_still_works_in_development(app, runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "Demo loaded" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) > 0
