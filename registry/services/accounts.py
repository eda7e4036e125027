"""Staff accounts: password hashing, server-side sessions and their timeouts."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import StaffSession, User

# OWASP ASVS 5.0 / OWASP cheat sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages does not write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    """Constant work whether or not the user exists, so timing tells nothing about accounts."""
    if user is None or not user.password_hash:
        with contextlib.suppress(VerificationError):
            HASHER.verify(_DUMMY_HASH, password)
        return False
    try:
        return HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, now: datetime | None = None,
                  is_verified: bool = False, user_agent: str = "") -> str:
    """A fresh session (a new token on every login); returns the token for the cookie."""
    now = now or now_utc()
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_sha256=_digest(token), user_id=user.id, created_at=now,
                             last_seen_at=now, is_verified=is_verified, user_agent=user_agent[:300]))
    session.flush()
    user.session_token = token
    return token


def find_session(session: Session, token: str | None) -> StaffSession | None:
    if not token or len(token) > 200:
        return None
    return session.scalar(select(StaffSession).where(StaffSession.token_sha256 == _digest(token)))


def live_session(session: Session, token: str | None, *, now: datetime | None = None) -> StaffSession | None:
    """The session for `token` if it is neither ended nor idle nor too old; expired ones are ended."""
    now = now or now_utc()
    staff_session = find_session(session, token)
    if staff_session is None or staff_session.ended_at is not None:
        return None
    if (now - staff_session.last_seen_at > IDLE_TIMEOUT
            or now - staff_session.created_at > ABSOLUTE_TIMEOUT):
        staff_session.ended_at = now
        session.flush()
        return None
    if not staff_session.user.is_enabled:
        return None
    if now - staff_session.last_seen_at > TOUCH_INTERVAL:
        staff_session.last_seen_at = now
        session.flush()
    staff_session.user.session_token = token
    return staff_session


def end_session(session: Session, token: str | None, *, now: datetime | None = None) -> None:
    staff_session = find_session(session, token)
    if staff_session is not None and staff_session.ended_at is None:
        staff_session.ended_at = now or now_utc()
        session.flush()
