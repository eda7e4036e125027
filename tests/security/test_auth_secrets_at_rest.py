"""Issue 9, item 15: secrets at rest. Instance files are 0600; TOTP secrets are encrypted in the database.

The SQLite database (with every TOTP secret), the outbox's .eml files and the generated secret_key
used to be created world-readable, and the TOTP secrets were stored as plain base32.
"""

from __future__ import annotations

import os
import stat

import pyotp
import pytest
from sqlalchemy import select, text

from registry import create_app
from registry.extensions import db
from registry.models import User
from registry.models.users import SEALED_PREFIX
from registry.notify.messages import BatchMessage, Recipient
from registry.notify.senders import sender_for
from registry.services import accounts
from registry.settings import Settings
from tests.conftest import PASSWORD, csrf_token


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def lax_umask():
    """The usual 022, as a shell would start the process with; restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_instance_files_are_created_for_the_owner_only(lax_umask, tmp_path):
    instance = tmp_path / "instance"
    settings = Settings.from_env({"REGISTRY_INSTANCE_PATH": str(instance), "REGISTRY_MAIL_SENDER": "outbox"})
    app = create_app(settings)
    with app.app_context():
        db.create_all()
        db.session.add(User(email="admin@example.com", role="admin", totp_secret=pyotp.random_base32()))
        db.session.commit()
        sender_for(settings).send(
            BatchMessage(subject="Hello", text="Body", html="<p>Body</p>", body_sha256="0" * 64),
            [Recipient(email="reader@example.com", substitutions={}, headers={}, custom_args={})])
        [message] = (instance / "outbox").glob("*.eml")
        files = [instance / "secret_key", instance / "registry.db", message]
        files += [path for path in instance.glob("registry.db-*")]  # WAL and shared-memory files
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
        assert mode(instance / "outbox") & 0o077 == 0
        db.session.remove()
        db.engine.dispose()


def test_an_existing_world_readable_database_is_closed_at_start_up(lax_umask, tmp_path):
    database = tmp_path / "old.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    create_app(Settings(env="test", secret_key="k" * 40, database_url=f"sqlite:///{database}",
                        instance_path=tmp_path / "instance", mail_sender="recording"))
    assert mode(database) == 0o600


def raw_secret(user_id: int) -> str:
    return db.session.execute(text("SELECT totp_secret FROM users WHERE id = :id"),
                              {"id": user_id}).scalar_one()


def test_the_column_never_holds_the_base32_secret(app, client, make_user):
    admin = make_user("admin", with_totp=False)
    client.post("/auth/login", data={"csrf_token": csrf_token(client), "email": admin.email,
                                     "password": PASSWORD})
    client.get("/auth/two-factor")
    with client.session_transaction() as session:
        secret = session["totp_setup_secret"]
    response = client.post("/auth/two-factor", data={"csrf_token": csrf_token(client),
                                                     "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    stored = raw_secret(admin.id)
    assert stored.startswith(SEALED_PREFIX) and secret not in stored and secret.lower() not in stored.lower()
    db.session.expire_all()
    assert db.session.get(User, admin.id).totp_secret == secret  # read back decrypted


def test_a_legacy_plaintext_secret_is_sealed_at_its_next_use(app, make_user):
    approver = make_user("approver", with_totp=False)
    secret = pyotp.random_base32()
    db.session.execute(text("UPDATE users SET totp_secret = :secret WHERE id = :id"),
                       {"secret": secret, "id": approver.id})
    db.session.commit()
    db.session.expire_all()
    user = db.session.get(User, approver.id)
    assert user.totp_secret == secret  # still readable as it was stored
    assert accounts.check_totp(db.session, user, pyotp.TOTP(secret).now()) is accounts.TotpResult.ACCEPTED
    db.session.commit()
    stored = raw_secret(approver.id)
    assert stored.startswith(SEALED_PREFIX) and secret not in stored


def test_another_secret_key_cannot_read_the_secrets(app, make_user, tmp_path):
    approver = make_user("approver")
    stored = raw_secret(approver.id)
    other = create_app(Settings(env="test", secret_key="another-key-" + "y" * 40,
                                database_url=app.config["SQLALCHEMY_DATABASE_URI"],
                                instance_path=tmp_path / "other", mail_sender="recording"))
    with other.app_context():
        user = db.session.scalar(select(User).where(User.email == approver.email))
        assert user.totp_secret == stored  # the sealed text, not a secret anyone could use
        with pytest.raises(accounts.AccountError, match="cannot be decrypted"):
            accounts.check_totp(db.session, user, "123456")
        db.session.remove()
        db.engine.dispose()
