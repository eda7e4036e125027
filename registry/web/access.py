"""Staff authentication glue: Flask-Login's loader on server-side sessions, and permission checks."""

from __future__ import annotations

from functools import wraps

from flask import Flask, abort, g, redirect, request, url_for
from flask_login import current_user

from registry.domain.roles import can
from registry.extensions import db, login_manager
from registry.services import accounts


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = None  # our own server-side sessions do this job

    @login_manager.user_loader
    def load_user(token: str):
        staff_session = accounts.live_session(db.session, token)
        if staff_session is None:
            return None
        g.staff_session = staff_session
        return staff_session.user

    def forget_previous_user() -> None:
        # `g` lives in the app context, which tests and CLI commands keep open across requests: the
        # user and session Flask-Login cached for an earlier request must never answer for this one.
        g.pop("_login_user", None)
        g.pop("staff_session", None)

    # First of all before-request hooks, so that rate-limit keys already see this request's user.
    app.before_request_funcs.setdefault(None, []).insert(0, forget_previous_user)

    @app.after_request
    def persist_session_touch(response):
        # live_session may have ended an expired session or moved last_seen_at forward.
        if db.session.dirty and request.method in ("GET", "HEAD"):
            db.session.commit()
        return response

    app.jinja_env.globals["can"] = lambda permission: (
        current_user.is_authenticated and can(current_user.role, permission)
    )


def permission_required(permission: str):
    """Anonymous: to the login page. Second factor pending: to it. Wrong role: 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            staff_session = g.get("staff_session")
            if current_user.needs_totp and not (staff_session and staff_session.is_verified):
                return redirect(url_for("auth.two_factor"))
            if not can(current_user.role, permission):
                abort(403, "Your role does not allow this.")
            return view(*args, **kwargs)

        wrapped.required_permission = permission
        return wrapped

    return decorator


def spent_on_get(view):
    """Mark a GET view that has an effect (a one-time link spent when opened): HEAD never runs it.

    A HEAD from a link checker or a proxy would otherwise spend the link without showing anyone
    the page; web/__init__.refuse_unsafe_methods answers such a HEAD with 405.
    """
    view.is_spent_on_get = True
    return view
