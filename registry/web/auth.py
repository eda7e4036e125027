"""Staff login, two-factor set-up and verification, one-time set-password links, logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from registry.extensions import db, limiter
from registry.services import accounts, audit
from registry.services.accounts import AccountError, TotpResult

bp = Blueprint("auth", __name__, url_prefix="/auth")

# The promise: at most 10 attempts in 5 minutes per IP address and per account.
ATTEMPT_LIMIT = "10 per 5 minutes"
GENERIC_FAILURE = "The email address or password is not right, or the account is disabled."
THROTTLED = ("Too many sign-in attempts. For your security, please wait a few minutes "
             "before you try again.")
_AFTER_LOGIN = "after_login"
_TOTP_SETUP = "totp_setup_secret"
FORM_MAX = 2000  # characters kept from any one field: enough for a long password, not for abuse


def no_store(response):
    """Staff pages hold personal data and one-time secrets: never cache them anywhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


bp.after_request(no_store)


def _field(name: str) -> str:
    return request.form.get(name, "")[:FORM_MAX].replace("\x00", "")


def _account_key() -> str:
    # Unknown accounts are counted exactly like real ones, so the limit tells nothing about them.
    return "account:" + accounts.normalise_email(_field("email"))


def _user_key() -> str:
    return f"totp:{current_user.id}" if current_user.is_authenticated else get_remote_address()


def _audit(action: str, actor: str, user=None, **details) -> None:
    audit.record(db.session, actor=actor or "(empty)", actor_id=user.id if user else None,
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


@bp.errorhandler(429)
def throttled(error):
    if request.endpoint == "auth.two_factor" and current_user.is_authenticated:
        _audit("auth.totp.throttled", current_user.email, current_user)
    else:
        _audit("auth.login.throttled", accounts.normalise_email(_field("email")))
    db.session.commit()
    return render_template("auth/throttled.html", message=THROTTLED), 429


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(ATTEMPT_LIMIT, methods=["POST"], key_func=get_remote_address)
@limiter.limit(ATTEMPT_LIMIT, methods=["POST"], key_func=_account_key)
def login():
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        if _is_verified():
            return redirect(next_url or _landing())
        return redirect(url_for("auth.two_factor"))
    if request.method == "GET":
        return render_template("auth/login.html", email="", next_url=next_url, errors={})

    email, password = accounts.normalise_email(_field("email")), request.form.get("password", "")
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."  # noqa: S105 (a message, not a secret)
    if errors:
        return render_template("auth/login.html", email=email, next_url=next_url, errors=errors), 400

    user, outcome = accounts.authenticate(db.session, email, password[:accounts.PASSWORD_MAX + 1])
    if outcome != "ok":
        _audit("auth.login.failed", email, user, reason=outcome)
        db.session.commit()
        return render_template("auth/login.html", email=email, next_url=next_url, errors={},
                               failure=GENERIC_FAILURE), 401

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
    return redirect(_landing())


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(ATTEMPT_LIMIT, methods=["POST"], key_func=_user_key)
def two_factor():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if _is_verified():
        return redirect(_landing())
    user = current_user._get_current_object()
    setup_secret = None
    if not user.totp_secret:
        setup_secret = session.get(_TOTP_SETUP) or accounts.new_totp_secret()
        session[_TOTP_SETUP] = setup_secret
    context = {"setup_secret": setup_secret,
               "setup_uri": accounts.totp_uri(user.email, setup_secret) if setup_secret else None}
    if request.method == "GET":
        return render_template("auth/two_factor.html", error=None, **context)

    result = accounts.check_totp(db.session, user, _field("code"), secret=setup_secret)
    if result is not TotpResult.ACCEPTED:
        action = "auth.totp.replayed" if result is TotpResult.REPLAYED else "auth.totp.failed"
        _audit(action, user.email, user)
        db.session.commit()
        message = ("That code was already used. Wait for the next code from your authenticator app."
                   if result is TotpResult.REPLAYED
                   else "That code is not right. Enter the 6-digit code your authenticator app shows now.")
        return render_template("auth/two_factor.html", error=message, **context), 400
    if setup_secret:
        user.totp_secret = setup_secret
        session.pop(_TOTP_SETUP, None)
        _audit("auth.totp.setup", user.email, user)
    accounts.mark_verified(db.session, g.staff_session)
    _audit("auth.login.success", user.email, user, second_factor="totp")
    db.session.commit()
    return redirect(_landing())


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


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    user = accounts.password_link_user(db.session, token)
    if user is None:
        response = current_app.make_response(
            (render_template("auth/link_invalid.html", message=accounts.LINK_INVALID), 404))
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    error, status = None, 200
    if request.method == "POST":
        password, confirm = request.form.get("password", ""), request.form.get("confirm", "")
        try:
            if password != confirm:
                raise AccountError("The two passwords are not the same.")
            accounts.use_password_link(db.session, token, password)
        except AccountError as problem:
            error, status = str(problem), 400
        else:
            _audit("auth.password.set", user.email, user)
            db.session.commit()
            flash("Your password is set. You can log in now.", "success")
            return redirect(url_for("auth.login"))
    response = current_app.make_response((render_template(
        "auth/set_password.html", email=user.email, error=error, minimum=accounts.PASSWORD_MIN), status))
    # The token is in the URL: do not hand it to any other site as a referrer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
