"""Staff login, two-factor set-up and verification, one-time set-password links, logout.

Every view handles one method. An attempt that checks a credential (a password, a TOTP code) is
admitted by `_refusal_for_login` or `_refusal_for_code` first, whatever else the request carries.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from registry.domain import throttle
from registry.domain.clock import now_utc
from registry.extensions import db, limiter
from registry.services import accounts, audit
from registry.services.accounts import AccountError, TotpResult
from registry.web.access import spent_on_get

bp = Blueprint("auth", __name__, url_prefix="/auth")

# At most 10 attempts in 5 minutes per address, and per account from one address. Across
# addresses an account only gets a growing wait (registry.domain.throttle), never a lockout.
ATTEMPT_LIMIT = RateLimitItemPerMinute(10, 5)
GENERIC_FAILURE = "The email address or password is not right, or the account is disabled."
THROTTLED = ("Too many sign-in attempts. For your security, please wait a few minutes "
             "before you try again.")
_AFTER_LOGIN = "after_login"
_TOTP_SETUP = "totp_setup_secret"
_PASSWORD_FORM = "set_password_token"  # noqa: S105 (a session key, not a secret)
FORM_MAX = 2000  # characters kept from any one field: enough for a long password, not for abuse
# A browser that completed a sign-in is remembered this long; it is then never made to wait
# because someone else is guessing the account's password.
DEVICE_MAX_AGE = timedelta(days=180)


def _field(name: str) -> str:
    return request.form.get(name, "")[:FORM_MAX].replace("\x00", "")


def _audit(action: str, claimed: str, user=None, **details) -> None:
    # Without an account behind it the text is whatever the client typed: cut short and marked.
    actor = user.email if user else audit.untrusted_actor(claimed)
    audit.record(db.session, actor=actor, actor_id=user.id if user else None,
                 action=action, object_type="user", object_id=user.id if user else "-",
                 after={"ip": request.remote_addr, **details})


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, a scheme, or a protocol-relative URL."""
    if not target or len(target) > 1000 or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _landing() -> str:
    target = session.pop(_AFTER_LOGIN, None)
    if target:
        return target
    endpoint = "admin.dashboard" if "admin.dashboard" in current_app.view_functions else "public.home"
    return url_for(endpoint)


def _is_verified() -> bool:
    staff_session = g.get("staff_session")
    return bool(staff_session and staff_session.is_verified)


def _address() -> str:
    return throttle.address_key(request.remote_addr)


def _hit(*identifiers: str) -> bool:
    """Count one attempt against ATTEMPT_LIMIT in the shared limiter storage; False once over it."""
    # A moving window: a fixed one would let twice the limit through around each window's edge.
    return MovingWindowRateLimiter(limiter.storage).hit(ATTEMPT_LIMIT, "registry-auth", *identifiers)


def _digest(text: str) -> str:
    # Storage keys stay short whatever the client typed.
    return hashlib.sha256(text.encode()).hexdigest()


def _refused(kind: str, scope: str, claimed: str, wait: timedelta | None = None, user=None):
    """The same 429 for every refusal; the audit log gets one counter per limit and window."""
    audit.record_refusal(db.session, kind=kind, scope=scope, ip=_address(), claimed_account=claimed,
                         user_id=user.id if user else None, now=now_utc())
    db.session.commit()
    response = make_response(render_template("auth/throttled.html", message=THROTTLED), 429)
    seconds = wait.total_seconds() if wait else ATTEMPT_LIMIT.get_expiry()
    response.headers["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="registry.auth.known-device")


def _device_cookie_name() -> str:
    # __Host- cookies must be Secure, which development over http cannot be.
    return "__Host-device" if current_app.config["REGISTRY"].is_production else "device"


def _known_device_for(email: str) -> bool:
    """Did this browser complete a sign-in to this account before (a valid signed device cookie)?"""
    raw = request.cookies.get(_device_cookie_name())
    if not raw or len(raw) > 500:
        return False
    try:
        data = _device_serializer().loads(raw, max_age=int(DEVICE_MAX_AGE.total_seconds()))
    except BadSignature:
        return False
    user = accounts.find_user(db.session, email)
    return (user is not None and isinstance(data, dict) and data.get("user") == user.id
            and data.get("password") == _password_fingerprint(user))


def _password_fingerprint(user) -> str:
    # A new password (argon2 hashes are salted, so any reset) retires every remembered device.
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def _remember_device(response, user):
    value = _device_serializer().dumps({"user": user.id, "password": _password_fingerprint(user),
                                        "device": secrets.token_urlsafe(12)})
    response.set_cookie(_device_cookie_name(), value, max_age=int(DEVICE_MAX_AGE.total_seconds()),
                        path="/", secure=current_app.config["REGISTRY"].is_production,
                        httponly=True, samesite="Lax")
    return response


def _refusal_for_login(email: str):
    """A 429 response if this password attempt may not be checked now, else None (it was counted)."""
    if not _hit("login-address", _address()):
        return _refused("login", "address", email)
    if not _hit("login-account-address", _digest(email), _address()):
        return _refused("login", "account_address", email)
    if not _known_device_for(email):
        wait = accounts.login_wait(db.session, email, now=now_utc())
        if wait > timedelta(0):
            return _refused("login", "account", email, wait)
    return None


def _refusal_for_code(user):
    if not _hit("totp-account", str(user.id)):
        return _refused("totp", "account", user.email, user=user)
    return None


@bp.get("/login")
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        if _is_verified():
            return redirect(next_url or _landing())
        return redirect(url_for("auth.two_factor"))
    return render_template("auth/login.html", email="", next_url=next_url, errors={})


@bp.post("/login")
def login_submit():
    next_url = safe_next(request.form.get("next"))
    email, password = accounts.normalise_email(_field("email")), request.form.get("password", "")
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."  # noqa: S105 (a message, not a secret)
    if errors:
        return render_template("auth/login.html", email=email, next_url=next_url, errors=errors), 400

    audit.close_refusal_windows(db.session, now_utc())
    refusal = _refusal_for_login(email)
    if refusal is not None:
        return refusal
    user, outcome = accounts.authenticate(db.session, email, password[:accounts.PASSWORD_MAX + 1])
    if outcome != "ok":
        accounts.record_login_failure(db.session, email, now=now_utc())
        _audit("auth.login.failed", email, user, reason=outcome)
        db.session.commit()
        return render_template("auth/login.html", email=email, next_url=next_url, errors={},
                               failure=GENERIC_FAILURE), 401

    accounts.clear_login_failures(db.session, email)
    # Session rotation: the old server-side session ends and nothing of the old cookie survives.
    if current_user.is_authenticated:
        accounts.end_session(db.session, current_user.get_id())
    logout_user()
    session.clear()
    token = accounts.start_session(db.session, user, is_verified=not user.needs_totp,
                                   user_agent=request.user_agent.string or "")
    g.staff_session = accounts.find_session(db.session, token)
    login_user(user)
    if next_url:
        session[_AFTER_LOGIN] = next_url
    if user.needs_totp:
        _audit("auth.login.password_ok", email, user, second_factor="pending")
        db.session.commit()
        return redirect(url_for("auth.two_factor"))
    accounts.mark_verified(db.session, g.staff_session)
    _audit("auth.login.success", email, user)
    db.session.commit()
    return _remember_device(redirect(_landing()), user)


def _pending_second_factor():
    """The redirect for a request that has no second factor to give, or None."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if _is_verified():
        return redirect(_landing())
    return None


def _two_factor_page(user, error: str | None = None, status: int = 200):
    setup_secret = None
    if not user.totp_secret:
        # Kept in the signed session until a code proves the app has it; only then is it stored.
        setup_secret = session.get(_TOTP_SETUP) or accounts.new_totp_secret()
        session[_TOTP_SETUP] = setup_secret
    return render_template("auth/two_factor.html", error=error, setup_secret=setup_secret,
                           setup_uri=accounts.totp_uri(user.email, setup_secret) if setup_secret else None
                           ), status


@bp.get("/two-factor")
def two_factor():
    elsewhere = _pending_second_factor()
    if elsewhere is not None:
        return elsewhere
    return _two_factor_page(current_user._get_current_object())


@bp.post("/two-factor")
def two_factor_submit():
    elsewhere = _pending_second_factor()
    if elsewhere is not None:
        return elsewhere
    user = current_user._get_current_object()
    audit.close_refusal_windows(db.session, now_utc())
    refusal = _refusal_for_code(user)
    if refusal is not None:
        return refusal
    setup_secret = None if user.totp_secret else session.get(_TOTP_SETUP)
    if not user.totp_secret and not setup_secret:
        return _two_factor_page(user, "Add the key below to your authenticator app first.", 400)
    try:
        result = accounts.check_totp(db.session, user, _field("code"), secret=setup_secret)
    except AccountError as problem:  # the stored secret cannot be decrypted: a configuration problem
        current_app.logger.error("two-factor for user %s: %s", user.id, problem)
        return _two_factor_page(user, "Your two-factor code cannot be checked right now. Ask an "
                                      "administrator to reset your two-factor.", 503)
    if result is not TotpResult.ACCEPTED:
        action = "auth.totp.replayed" if result is TotpResult.REPLAYED else "auth.totp.failed"
        _audit(action, user.email, user)
        db.session.commit()
        message = ("That code was already used. Wait for the next code from your authenticator app."
                   if result is TotpResult.REPLAYED
                   else "That code is not right. Enter the 6-digit code your authenticator app shows now.")
        return _two_factor_page(user, message, 400)
    if setup_secret:
        user.totp_secret = setup_secret
        session.pop(_TOTP_SETUP, None)
        _audit("auth.totp.setup", user.email, user)
    accounts.mark_verified(db.session, g.staff_session)
    _audit("auth.login.success", user.email, user, second_factor="totp")
    db.session.commit()
    return _remember_device(redirect(_landing()), user)


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        accounts.end_session(db.session, current_user.get_id())
        _audit("auth.logout", current_user.email, current_user)
        db.session.commit()
    logout_user()
    session.clear()
    flash("You have been logged out.", "info")
    return redirect(url_for("auth.login"))


def _private(response):
    # These pages are reached from a one-time link: never tell another site where the user came from.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _link_invalid():
    return _private(make_response(
        render_template("auth/link_invalid.html", message=accounts.LINK_INVALID), 404))


@bp.get("/set-password/<token>")
@spent_on_get
def set_password(token: str):
    """The emailed link: swapped at once for a token only this browser's session holds.

    The link's token dies here, so a copy of the URL (an access log, a proxy, browser history)
    is worthless; the form lives at a URL without any secret in it.
    """
    form_token = accounts.open_password_link(db.session, token)
    if form_token is None:
        return _link_invalid()
    user = accounts.password_link_user(db.session, form_token)
    _audit("auth.password_link.opened", user.email, user)
    db.session.commit()
    session[_PASSWORD_FORM] = form_token
    return _private(redirect(url_for("auth.set_password_form"), 303))


def _password_page(user, error: str | None = None, status: int = 200):
    return _private(make_response(render_template(
        "auth/set_password.html", email=user.email, error=error, minimum=accounts.PASSWORD_MIN), status))


@bp.get("/set-password")
def set_password_form():
    user = accounts.password_link_user(db.session, session.get(_PASSWORD_FORM))
    if user is None:
        return _link_invalid()
    return _password_page(user)


@bp.post("/set-password")
def set_password_submit():
    token = session.get(_PASSWORD_FORM)
    user = accounts.password_link_user(db.session, token)
    if user is None:
        return _link_invalid()
    password, confirm = request.form.get("password", ""), request.form.get("confirm", "")
    try:
        if password != confirm:
            raise AccountError("The two passwords are not the same.")
        accounts.use_password_link(db.session, token, password)
    except AccountError as problem:
        return _password_page(user, str(problem), 400)
    session.pop(_PASSWORD_FORM, None)
    _audit("auth.password.set", user.email, user)
    db.session.commit()
    flash("Your password is set. You can log in now.", "success")
    return _private(redirect(url_for("auth.login")))
