"""Issue 9, item 17: production refuses per-process (memory://) rate limits; Redis limits work.

With several gunicorn workers, memory:// gives each worker its own count, multiplying every
sign-in limit by the number of workers.
"""

from __future__ import annotations

import os
import uuid

import pytest

from registry import create_app
from registry.extensions import db, limiter
from registry.settings import Settings, SettingsError
from tests.conftest import csrf_token, make_settings

REDIS_URL = os.environ.get("REGISTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"
PRODUCTION = {
    "REGISTRY_ENV": "production", "REGISTRY_SECRET_KEY": "s" * 40, "REGISTRY_DATABASE_URL": "sqlite:///x.db",
    "REGISTRY_SENDGRID_API_KEY": "SG.key", "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw...",
    "REGISTRY_BASE_URL": "https://trust.example.com",
}


def test_production_refuses_memory_limits(tmp_path):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({**PRODUCTION, "REGISTRY_INSTANCE_PATH": str(tmp_path)})
    assert "REGISTRY_RATELIMIT_STORAGE_URI must be shared storage" in str(error.value)
    assert "REGISTRY_RATELIMIT_ALLOW_MEMORY=1" in str(error.value)
    with pytest.raises(SettingsError, match="REGISTRY_RATELIMIT_STORAGE_URI"):
        Settings.from_env({**PRODUCTION, "REGISTRY_INSTANCE_PATH": str(tmp_path),
                           "REGISTRY_RATELIMIT_STORAGE_URI": "memory://",
                           "REGISTRY_RATELIMIT_ALLOW_MEMORY": "0"})


@pytest.mark.parametrize("extra", [{"REGISTRY_RATELIMIT_STORAGE_URI": "redis://localhost:6379/0"},
                                   {"REGISTRY_RATELIMIT_ALLOW_MEMORY": "1"}])
def test_production_starts_with_shared_storage_or_an_explicit_single_process(tmp_path, extra):
    settings = Settings.from_env({**PRODUCTION, "REGISTRY_INSTANCE_PATH": str(tmp_path), **extra})
    assert settings.is_production


def test_development_may_use_memory_and_the_flag_must_be_a_flag(tmp_path):
    assert Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path)}).ratelimit_storage_uri == "memory://"
    with pytest.raises(SettingsError, match="REGISTRY_RATELIMIT_ALLOW_MEMORY must be 1 or 0"):
        Settings.from_env({"REGISTRY_INSTANCE_PATH": str(tmp_path),
                           "REGISTRY_RATELIMIT_ALLOW_MEMORY": "maybe"})


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {REDIS_URL} ({error}); set REGISTRY_TEST_REDIS_URL or start it."
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()


def redis_app(tmp_path, name):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'redis.db'}", tmp_path / name,
                                   ratelimit_storage_uri=REDIS_URL))
    app.config["TESTING"] = True
    return app


def test_sign_in_limits_are_kept_in_redis_and_shared_by_workers(tmp_path, redis_client):
    # An address no other test run uses: this test never resets Redis, other users may share it.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    first = redis_app(tmp_path, "first")
    try:
        with first.app_context():
            db.create_all()
            client = first.test_client()
            answers = [client.post("/auth/login", environ_base={"REMOTE_ADDR": address},
                                   data={"csrf_token": csrf_token(client), "email": f"p{index}@example.com",
                                         "password": "wrong guess!!"}).status_code for index in range(6)]
            assert answers == [401] * 6
            db.session.remove()
            db.engine.dispose()
        keys = [key for key in redis_client.scan_iter(match="*", count=1000) if address.encode() in key]
        assert keys, "the limiter's counters are not in Redis"

        # Another worker process: a fresh app with its own connection sees the same counts.
        second = redis_app(tmp_path, "second")
        with second.app_context():
            client = second.test_client()
            answers = [client.post("/auth/login", environ_base={"REMOTE_ADDR": address},
                                   data={"csrf_token": csrf_token(client), "email": f"q{index}@example.com",
                                         "password": "wrong guess!!"}).status_code for index in range(5)]
            assert answers == [401] * 4 + [429]
            db.session.remove()
            db.engine.dispose()
    finally:
        for key in redis_client.scan_iter(match="*", count=1000):
            if address.encode() in key:
                redis_client.delete(key)
        # Put the shared limiter back on memory storage for the tests that follow in this process.
        create_app(make_settings(f"sqlite:///{tmp_path / 'after.db'}", tmp_path / "after"))
        limiter.reset()
