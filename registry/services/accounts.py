"""Staff accounts: creation, passwords, TOTP two-factor, server-side sessions and their timeouts."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from registry.domain import throttle
from registry.domain.clock import now_utc
from registry.domain.roles import ROLES
from registry.models import LoginThrottle, StaffSession, User
from registry.models.users import LegacyPlaintext, PasswordResetToken, UnreadableSecret
from registry.services.audit import upsert

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


# A hash with HASHER's parameters of a random password nobody kept: verifying against it costs what
# verifying a real one does. A literal, because hashing one at import cost every process (the worker,
# each gunicorn worker, every CLI command) 80 ms of start-up; a test checks the parameters match.
_DUMMY_HASH = ("$argon2id$v=19$m=19456,t=2,p=1$iSKVJgOAAYpuMa53MV9o7A"
               "$/miTnucqALGADD920kfZmX+tOYR47rNifZoFdxAEhCs")


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


def end_user_sessions(session: Session, user: User, *, now: datetime | None = None) -> int:
    """End every open session of `user` (disabled, password or two-factor reset)."""
    now = now or now_utc()
    open_sessions = session.scalars(
        select(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
    ).all()
    for staff_session in open_sessions:
        staff_session.ended_at = now
    session.flush()
    return len(open_sessions)


class AccountError(ValueError):
    """Input that cannot become an account (a bad email, role or password); the message says why."""


EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 12, 1024
# The RFC 5322 "atext" characters before the @ (no quotes, brackets or comments), host labels after it.
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(\.[\w-]+)+")
PASSWORD_LINK_LIFETIME = timedelta(hours=24)
# Once a link was opened, its form (held by that browser's session only) stays usable this long.
PASSWORD_FORM_LIFETIME = timedelta(hours=1)
LINK_INVALID = "This link is invalid, already used or expired. Ask an administrator for a new one."


def normalise_email(raw: object) -> str:
    """How an email is stored and looked up: trimmed and lower-case (also the throttling key)."""
    return str(raw or "").strip().lower()


def validate_email(raw: object) -> str:
    email = normalise_email(raw)
    if not email:
        raise AccountError("Enter an email address.")
    if len(email) > EMAIL_MAX:
        raise AccountError(f"An email address has at most {EMAIL_MAX} characters.")
    if not _EMAIL.fullmatch(email) or not email.isprintable():
        raise AccountError(f"{email[:80]!r} is not an email address (expected name@example.com).")
    return email


def validate_role(raw: object) -> str:
    role = str(raw or "").strip().lower()
    if role not in ROLES:
        raise AccountError(f"Unknown role {str(raw)[:40]!r}: choose one of {', '.join(ROLES)}.")
    return role


def validate_password(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise AccountError("Enter a password.")
    if "\x00" in password:
        raise AccountError("A password cannot contain NUL characters.")
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"A password needs at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"A password has at most {PASSWORD_MAX} characters.")
    return password


def find_user(session: Session, email: object) -> User | None:
    email = normalise_email(email)
    if not email or len(email) > EMAIL_MAX:
        return None
    return session.scalar(select(User).where(User.email == email))


def create_user(session: Session, email: object, role: object, *, password: str | None = None) -> User:
    """A new enabled account; without a password it can only be used after a set-password link."""
    email, role = validate_email(email), validate_role(role)
    if password is not None:
        validate_password(password)
    if find_user(session, email) is not None:
        raise AccountError(f"There is already an account for {email}.")
    user = User(email=email, role=role, is_enabled=True,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    return user


def set_enabled(session: Session, user: User, enabled: bool, *, now: datetime | None = None) -> None:
    user.is_enabled = enabled
    if not enabled:
        end_user_sessions(session, user, now=now)
    session.flush()


def reset_two_factor(session: Session, user: User, *, now: datetime | None = None) -> None:
    """Forget the TOTP secret: the user sets up a new one at the next login."""
    user.totp_secret = None
    user.totp_last_step = None
    end_user_sessions(session, user, now=now)


def authenticate(session: Session, email: object, password: str) -> tuple[User | None, str]:
    """(user, outcome): outcome is ok, unknown_account, bad_password or disabled.

    The same argon2 work is done in every case; callers show one generic message for all failures.
    """
    user = find_user(session, email)
    if not verify_password(user, password or ""):
        return (user, "bad_password") if user else (None, "unknown_account")
    if not user.is_enabled:
        return user, "disabled"
    return user, "ok"


def issue_password_link(session: Session, user: User, *, now: datetime | None = None) -> str:
    """A new one-time token (24 h); older unused ones for the account stop working."""
    now = now or now_utc()
    for older in session.scalars(select(PasswordResetToken).where(
            PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))):
        older.used_at = now
    token = secrets.token_urlsafe(32)
    session.add(PasswordResetToken(token_sha256=_digest(token), user_id=user.id, created_at=now,
                                   expires_at=now + PASSWORD_LINK_LIFETIME))
    session.flush()
    return token


def password_link_user(session: Session, token: str | None, *, now: datetime | None = None) -> User | None:
    """The account a set-password token is for, while it is unused, unexpired and the account enabled."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_sha256 == _digest(token)))
    if row is None or row.used_at is not None or (now or now_utc()) >= row.expires_at:
        return None
    return row.user if row.user.is_enabled else None


def open_password_link(session: Session, token: str | None, *, now: datetime | None = None) -> str | None:
    """Swap a link's token for a new one (returned, for the opener's session); the link's token dies.

    The row keeps its account and expiry (at most PASSWORD_FORM_LIFETIME from now); only the hash of
    the new token is stored, so the old one matches nothing any more. None if the link is not valid.
    """
    now = now or now_utc()
    if password_link_user(session, token, now=now) is None:
        return None
    row = session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_sha256 == _digest(token)))
    form_token = secrets.token_urlsafe(32)
    # Conditional on the old hash: of two requests opening the same link, only one gets a form.
    swapped = session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.token_sha256 == _digest(token),
               PasswordResetToken.used_at.is_(None))
        .values(token_sha256=_digest(form_token),
                expires_at=min(row.expires_at, now + PASSWORD_FORM_LIFETIME))
        .execution_options(synchronize_session=False)
    )
    if swapped.rowcount != 1:
        return None
    session.expire(row)
    return form_token


def use_password_link(session: Session, token: str, password: str, *, now: datetime | None = None) -> User:
    """Set the password and spend the token; every open session of the account ends."""
    now = now or now_utc()
    user = password_link_user(session, token, now=now)
    if user is None:
        raise AccountError(LINK_INVALID)
    validate_password(password)
    # Spend the token with a conditional UPDATE, so that two requests racing with it cannot both win.
    spent = session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.token_sha256 == _digest(token), PasswordResetToken.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:
        raise AccountError(LINK_INVALID)
    user.password_hash = hash_password(password)
    end_user_sessions(session, user, now=now)
    return user


class TotpResult(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"
    REPLAYED = "replayed"


TOTP_ISSUER = "Sub-processor registry"
CANNOT_DECRYPT = (
    "This account's two-factor secret cannot be decrypted with the current REGISTRY_SECRET_KEY. "
    "Restore the previous key, or reset its two-factor: flask users reset-2fa EMAIL.")


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(email: str, secret: str, issuer: str = TOTP_ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def check_totp(session: Session, user: User, code: object, *, secret: str | None = None,
               now: datetime | None = None) -> TotpResult:
    """Accept a code of the current 30 s step or its neighbours, each step at most once per account.

    `secret` is a secret being set up (not yet stored); otherwise the user's own is used.
    """
    secret = secret or user.totp_secret
    digits = re.sub(r"\s", "", str(code or ""))
    if not secret or not re.fullmatch(r"[0-9]{6}", digits):
        return TotpResult.INVALID
    if isinstance(secret, UnreadableSecret):
        raise AccountError(CANNOT_DECRYPT)
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now or now_utc())
    matched = [step for step in (current - 1, current, current + 1)
               if hmac.compare_digest(totp.generate_otp(step), digits)]
    if not matched:
        return TotpResult.INVALID
    step = matched[-1]
    if isinstance(user.totp_secret, LegacyPlaintext):
        # Stored before secrets were encrypted: written back sealed with this flush.
        flag_modified(user, "totp_secret")
    # A conditional UPDATE: of two requests racing with the same code, only one moves the step on.
    moved = session.execute(
        update(User)
        .where(User.id == user.id)
        .where((User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        return TotpResult.REPLAYED
    set_committed_value(user, "totp_last_step", step)
    return TotpResult.ACCEPTED


def current_totp_code(user: User, *, now: datetime | None = None) -> str:
    """The code the account's authenticator shows now (development helpers only)."""
    if not user.totp_secret:
        raise AccountError(f"{user.email} has no two-factor secret yet; it is set up at the next login.")
    if isinstance(user.totp_secret, UnreadableSecret):
        raise AccountError(CANNOT_DECRYPT)
    return pyotp.TOTP(user.totp_secret).at(now or now_utc())


def mark_verified(session: Session, staff_session: StaffSession, *, now: datetime | None = None) -> None:
    staff_session.is_verified = True
    staff_session.user.last_login_at = now or now_utc()
    session.flush()


def login_wait(session: Session, email: object, *, now: datetime | None = None) -> timedelta:
    """How long a password attempt for `email` from a device not known to it must still wait."""
    row = session.scalar(select(LoginThrottle).where(
        LoginThrottle.account_sha256 == _digest(normalise_email(email))))
    if row is None:
        return timedelta(0)
    return throttle.account_wait(row.failures, row.last_failure_at, now or now_utc())


def record_login_failure(session: Session, email: object, *, now: datetime | None = None) -> int:
    """Count a failed password for `email` (an account or not); returns the failures that now count."""
    now = now or now_utc()
    digest = _digest(normalise_email(email))
    session.execute(upsert(session, LoginThrottle)
                    .values(account_sha256=digest, failures=0, last_failure_at=now)
                    .on_conflict_do_nothing(index_elements=[LoginThrottle.account_sha256]))
    for _attempt in range(100):
        current = session.execute(
            select(LoginThrottle.failures, LoginThrottle.last_failure_at)
            .where(LoginThrottle.account_sha256 == digest)).one_or_none()
        if current is None:  # forget_stale_failures deleted it just now: start it again
            session.execute(upsert(session, LoginThrottle)
                            .values(account_sha256=digest, failures=0, last_failure_at=now)
                            .on_conflict_do_nothing(index_elements=[LoginThrottle.account_sha256]))
            continue
        failures, last = current
        counted = throttle.live_failures(failures, last, now) + 1
        # A version check on what was read: a concurrent failure makes this UPDATE miss, then we re-read.
        moved = session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.account_sha256 == digest, LoginThrottle.failures == failures,
                   LoginThrottle.last_failure_at == last)
            .values(failures=counted, last_failure_at=max(now, last))
            .execution_options(synchronize_session=False))
        if moved.rowcount == 1:
            return counted
    raise RuntimeError("the sign-in failure counter kept changing under us; giving up on this one")


def clear_login_failures(session: Session, email: object) -> None:
    """The right password was given: the account no longer makes anyone wait."""
    session.execute(update(LoginThrottle)
                    .where(LoginThrottle.account_sha256 == _digest(normalise_email(email)))
                    .values(failures=0).execution_options(synchronize_session=False))


def forget_stale_failures(session: Session, *, now: datetime | None = None) -> int:
    """Delete failure counters that no longer count (quiet for FORGET_AFTER); returns how many.

    Every name anyone tried gets a row, so without this the table only grows.
    """
    cutoff = (now or now_utc()) - throttle.FORGET_AFTER
    return session.execute(
        delete(LoginThrottle).where(LoginThrottle.last_failure_at <= cutoff)
        .execution_options(synchronize_session=False)).rowcount
