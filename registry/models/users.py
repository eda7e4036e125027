"""Staff accounts (disabled, never deleted), their server-side sessions and sign-in failure counters."""

from __future__ import annotations

import base64
import functools
from datetime import datetime
from enum import StrEnum

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime

SEALED_PREFIX = "fernet1:"


class LegacyPlaintext(str):
    """A TOTP secret stored before secrets were encrypted: services.accounts seals it on next use."""

    __slots__ = ()


class UnreadableSecret(str):
    """A sealed value the current secret key cannot open (REGISTRY_SECRET_KEY was changed).

    Loading the account still works (so it can be listed and reset); no code is ever accepted.
    """

    __slots__ = ()


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    # A key of its own for this purpose, derived from the app's secret key (HKDF, RFC 5869).
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"registry: TOTP secrets at rest v1").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class SealedString(TypeDecorator[str]):
    """Encrypted at rest with a key derived from the secret key; plain text only in memory.

    A database dump or a stolen SQLite file alone no longer gives anyone the second factor.
    """

    impl = String(255)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        token = _fernet(current_app.config["SECRET_KEY"]).encrypt(str(value).encode())
        return SEALED_PREFIX + token.decode()

    def process_result_value(self, value: str | None, dialect) -> str | None:
        if value is None:
            return None
        if not value.startswith(SEALED_PREFIX):
            return LegacyPlaintext(value)
        try:
            return _fernet(current_app.config["SECRET_KEY"]).decrypt(
                value[len(SEALED_PREFIX):].encode()).decode()
        except InvalidToken:
            return UnreadableSecret(value)


class Role(StrEnum):
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    totp_secret: Mapped[str | None] = mapped_column(SealedString)
    # The last TOTP time step accepted; a code from this step or an earlier one is refused.
    totp_last_step: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The approvers' inbox mails this user turned off in their account (services.inbox.KINDS).
    inbox_muted: Mapped[list[str]] = mapped_column(JSON, default=list)

    # Flask-Login: the id it keeps in the cookie is the server-side session token, not the user id.
    # A plain instance attribute, set by services.accounts when the session is started or loaded.
    session_token = None

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.is_enabled

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str | None:
        return self.session_token

    @property
    def needs_totp(self) -> bool:
        """Approvers and admins must set up two-factor before they may act."""
        return self.role in (Role.APPROVER, Role.ADMIN)


class StaffSession(db.Model):
    """A login. The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    # Set once the second factor was given (or when the role needs none).
    is_verified: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(300), default="")

    user: Mapped[User] = relationship()


class PasswordResetToken(db.Model):
    """A one-time set-password link. Only the token's SHA-256 is stored; it is spent on first use."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the link was used, or when a newer link for the same account replaced it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class LoginThrottle(db.Model):
    """Sign-in failures of one account name (existing or not) from any address, for the growing wait."""

    __tablename__ = "login_throttles"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the normalised email: names that are not accounts are counted too, without storing them.
    account_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    # Indexed for `flask users forget-failures`, which deletes the rows no rule reads any more.
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
