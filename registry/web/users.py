"""Admin: staff accounts (create, disable, enable, reset two-factor, new set-password link), never deleted;
and every staff user's own account page (which inbox mails they get)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField

from registry.domain.roles import ROLES, can
from registry.extensions import db
from registry.models import User
from registry.services import accounts, audit, inbox
from registry.services.accounts import AccountError
from registry.web.access import permission_required

bp = Blueprint("users", __name__, url_prefix="/admin/users")


def password_link(token: str) -> str:
    """The absolute set-password URL, on the configured public address (also used by the CLI)."""
    return current_app.config["REGISTRY"].base_url + url_for("auth.set_password", token=token)


def _page(status: int = 200, **context):
    users = db.session.scalars(select(User).order_by(User.email)).all()
    context.setdefault("form", {"email": "", "role": "editor"})
    context.setdefault("errors", {})
    return render_template("users/index.html", users=users, roles=ROLES, **context), status


def _audit(action: str, user: User, before: dict | None = None, after: dict | None = None) -> None:
    audit.record(db.session, actor=current_user.email, actor_id=current_user.id, action=action,
                 object_type="user", object_id=user.id, before=before, after=after)


def _target(user_id: int) -> User:
    return db.get_or_404(User, user_id, description="There is no such staff account.")


@bp.get("/")
@permission_required("manage_users")
def index():
    return _page()


@bp.post("/create")
@permission_required("manage_users")
def create():
    raw_email, raw_role = request.form.get("email", "")[:1000], request.form.get("role", "")[:40]
    form = {"email": raw_email.replace("\x00", ""), "role": raw_role}
    errors = {}
    email = role = None
    try:
        email = accounts.validate_email(raw_email)
    except AccountError as problem:
        errors["email"] = str(problem)
    try:
        role = accounts.validate_role(raw_role)
    except AccountError as problem:
        errors["role"] = str(problem)
    if not errors:
        try:
            user = accounts.create_user(db.session, email, role)
        except AccountError as problem:
            errors["email"] = str(problem)
    if errors:
        return _page(400, form=form, errors=errors)
    token = accounts.issue_password_link(db.session, user)
    _audit("user.create", user, after={"email": user.email, "role": user.role})
    db.session.commit()
    return _page(201, created=user, new_link=password_link(token))


@bp.post("/<int:user_id>/disable")
@permission_required("manage_users")
def disable(user_id: int):
    user = _target(user_id)
    if user.id == current_user.id:
        flash("You cannot disable your own account; ask another administrator.", "error")
        return redirect(url_for("users.index"))
    if user.is_enabled:
        accounts.set_enabled(db.session, user, False)
        _audit("user.disable", user, before={"is_enabled": True}, after={"is_enabled": False})
        db.session.commit()
    flash(f"{user.email} is disabled and signed out everywhere.", "success")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/enable")
@permission_required("manage_users")
def enable(user_id: int):
    user = _target(user_id)
    if not user.is_enabled:
        accounts.set_enabled(db.session, user, True)
        _audit("user.enable", user, before={"is_enabled": False}, after={"is_enabled": True})
        db.session.commit()
    flash(f"{user.email} is enabled.", "success")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/reset-two-factor")
@permission_required("manage_users")
def reset_two_factor(user_id: int):
    user = _target(user_id)
    had_secret = user.totp_secret is not None
    accounts.reset_two_factor(db.session, user)
    _audit("user.two_factor_reset", user, before={"has_totp": had_secret}, after={"has_totp": False})
    db.session.commit()
    flash(f"Two-factor for {user.email} was reset; they set it up again at their next login.", "success")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/password-link")
@permission_required("manage_users")
def new_password_link(user_id: int):
    user = _target(user_id)
    if not user.is_enabled:
        flash(f"{user.email} is disabled; enable the account first.", "error")
        return redirect(url_for("users.index"))
    token = accounts.issue_password_link(db.session, user)
    _audit("user.password_link", user)
    db.session.commit()
    return _page(201, link_for=user, new_link=password_link(token))


class InboxForm(FlaskForm):
    """One box per inbox mail kind (services.inbox.KINDS): ticked means the mail is wanted."""


for _kind, _label in inbox.KINDS.items():
    setattr(InboxForm, _kind, BooleanField(_label))


def _account_page(form: InboxForm, status: int = 200):
    kinds = [getattr(form, kind) for kind in inbox.KINDS]
    return render_template("users/account.html", form=form, kinds=kinds,
                           is_approver=can(current_user.role, "approve")), status


@bp.get("/account")
@permission_required("view")
def account():
    form = InboxForm()
    for kind in inbox.KINDS:
        getattr(form, kind).data = kind not in (current_user.inbox_muted or [])
    return _account_page(form)


@bp.post("/account")
@permission_required("view")
def save_account():
    form = InboxForm()
    if not form.validate_on_submit():
        flash("; ".join(m for errors in form.errors.values() for m in errors)
              or "The form was not accepted; please try again.", "error")
        return _account_page(form, 422)
    before = sorted(current_user.inbox_muted or [])
    inbox.set_muted(db.session, current_user, [k for k in inbox.KINDS if not getattr(form, k).data])
    audit.record(db.session, actor=current_user.email, actor_id=current_user.id,
                 action="user.inbox_preferences", object_type="user", object_id=current_user.id,
                 before={"muted": before},
                 after={"muted": current_user.inbox_muted})
    db.session.commit()
    flash("Your mail preferences are saved.", "success")
    return redirect(url_for("users.account"))
