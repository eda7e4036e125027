"""Settings come from REGISTRY_* variables; production refuses to start without its secrets."""

import pytest

from registry import create_app
from registry.settings import Settings, SettingsError


def test_production_without_secret_or_database_stops(tmp_path):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"REGISTRY_ENV": "production", "REGISTRY_INSTANCE_PATH": str(tmp_path)})
    assert "REGISTRY_SECRET_KEY is required" in str(error.value)
    assert "REGISTRY_DATABASE_URL is required" in str(error.value)


def test_create_app_refuses_invalid_production_settings(tmp_path):
    settings = Settings(env="production", instance_path=tmp_path, secret_key="short",
                        database_url="postgresql+psycopg://x@127.0.0.1/x", mail_sender="outbox")
    with pytest.raises(SettingsError, match="REGISTRY_SECRET_KEY"):
        create_app(settings)


def test_production_with_everything_starts(tmp_path):
    settings = Settings.from_env({
        "REGISTRY_ENV": "production", "REGISTRY_INSTANCE_PATH": str(tmp_path),
        "REGISTRY_SECRET_KEY": "s" * 40, "REGISTRY_DATABASE_URL": "sqlite:///x.db",
        "REGISTRY_SENDGRID_API_KEY": "SG.key", "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw...",
        "REGISTRY_BASE_URL": "https://trust.example.com",
        "REGISTRY_RATELIMIT_STORAGE_URI": "redis://localhost:6379/0",
    })
    assert settings.is_production
    assert settings.mail_sender == "sendgrid"
    assert settings.secret_key == "s" * 40


def test_development_generates_a_secret_once(tmp_path):
    first = Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)})
    second = Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)})
    assert len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert first.database_url == f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("REGISTRY_ENV", "staging", "REGISTRY_ENV must be one of"),
    ("REGISTRY_MAIL_SENDER", "pigeon", "REGISTRY_MAIL_SENDER must be one of"),
    ("REGISTRY_LEGAL_TIMEZONE", "Mars/Olympus", "is not a time zone"),
    ("REGISTRY_PAGE_CACHE_SECONDS", "soon", "REGISTRY_PAGE_CACHE_SECONDS must be a number"),
])
def test_invalid_values_are_named(tmp_path, name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value, "REGISTRY_INSTANCE_PATH": str(tmp_path)})


def test_production_names_webhook_key_and_https(tmp_path):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({
            "REGISTRY_ENV": "production", "REGISTRY_INSTANCE_PATH": str(tmp_path),
            "REGISTRY_SECRET_KEY": "s" * 40, "REGISTRY_DATABASE_URL": "sqlite:///x.db",
            "REGISTRY_SENDGRID_API_KEY": "SG.key", "REGISTRY_BASE_URL": "http://trust.example.com",
        })
    assert "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY" in str(error.value)
    assert "https://" in str(error.value)


def _remote_addr_seen(settings: Settings) -> str:
    from flask import request

    app = create_app(settings)
    app.add_url_rule("/whoami", view_func=lambda: request.remote_addr)
    return app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"}).text


def test_proxy_count_trusts_forwarded_for(tmp_path):
    settings = Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path), "REGISTRY_PROXY_COUNT": "1",
                                  "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert _remote_addr_seen(settings) == "203.0.113.9"
    assert _remote_addr_seen(settings.with_overrides(proxy_count=0)) == "127.0.0.1"
