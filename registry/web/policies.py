"""Admin: notice policies (length, unit, holiday calendars, legal time zone, objection period)."""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from registry.domain.notice import MAX_LENGTH, MAX_OBJECTION_DAYS, UNITS, NoticeRule
from registry.extensions import db
from registry.models import NoticePolicy
from registry.services import policies
from registry.web.access import permission_required

bp = Blueprint("policies", __name__, url_prefix="/admin/policies")

MAX_CALENDARS = 12
FIELD_MAX = 200
# Which form field each of NoticeRule.validate()'s problems belongs to, by how the problem starts.
_PROBLEM_FIELDS = (("length", "length"), ("unknown unit", "unit"), ("calendars", "calendars"),
                   ("unknown holiday calendar", "calendars"), ("calendar codes", "calendars"),
                   ("unknown time zone", "timezone"), ("objection_days", "objection_days"))


def _whole_number(raw: str) -> int | str:
    """An int when the text is one; otherwise the text, so that NoticeRule names the problem."""
    return int(raw) if re.fullmatch(r"-?[0-9]{1,6}", raw) else raw


def parse_rule(form) -> tuple[NoticeRule | None, dict[str, str], dict[str, list[str]]]:
    """(rule or None, the values to show again, problems by field)."""
    raw = {name: form.get(name, "")[:FIELD_MAX].replace("\x00", "").strip()
           for name in ("length", "unit", "calendars", "timezone", "objection_days")}
    codes = tuple(dict.fromkeys(code for code in re.split(r"[\s,;]+", raw["calendars"]) if code))
    errors: dict[str, list[str]] = {}
    if len(codes) > MAX_CALENDARS:
        errors["calendars"] = [f"At most {MAX_CALENDARS} calendars."]
    rule = NoticeRule(length=_whole_number(raw["length"]), unit=raw["unit"], calendars=codes,
                      timezone=raw["timezone"],
                      objection_days=_whole_number(raw["objection_days"]) if raw["objection_days"] else None)
    try:
        rule.validate()
    except ValueError as problem:
        for message in str(problem).removeprefix("invalid notice rule: ").split("; "):
            field = next((name for start, name in _PROBLEM_FIELDS if message.startswith(start)), "length")
            errors.setdefault(field, []).append(message)
    else:
        try:
            policies.check_policy(rule)
        except policies.PolicyError as problem:
            errors.setdefault(problem.field, []).append(str(problem))
    return (None if errors else rule), raw, errors


def _policy(policy_id: int) -> NoticePolicy:
    return db.get_or_404(NoticePolicy, policy_id, description="There is no such notice policy.")


@bp.get("/")
@permission_required("manage_policies")
def index():
    policies = db.session.scalars(select(NoticePolicy).order_by(NoticePolicy.name)).all()
    return render_template("policies/index.html", policies=policies)


def _form_context(policy: NoticePolicy) -> dict:
    return {"policy": policy, "units": UNITS, "max_length": MAX_LENGTH, "max_objection": MAX_OBJECTION_DAYS}


@bp.get("/<int:policy_id>")
@permission_required("manage_policies")
def edit(policy_id: int):
    policy = _policy(policy_id)
    values = policies.snapshot(policy)
    raw = {**{name: str(value) for name, value in values.items()},
           "calendars": ", ".join(values["calendars"]),
           "objection_days": "" if values["objection_days"] is None else str(values["objection_days"])}
    return render_template("policies/edit.html", raw=raw, errors={}, **_form_context(policy))


@bp.post("/<int:policy_id>")
@permission_required("manage_policies")
def update(policy_id: int):
    policy = _policy(policy_id)
    rule, raw, errors = parse_rule(request.form)
    if rule is None:
        return render_template("policies/edit.html", raw=raw, errors=errors, **_form_context(policy)), 422
    if policies.update_policy(db.session, policy, rule, actor=current_user.email, actor_id=current_user.id):
        db.session.commit()
        flash(f"The notice policy “{policy.name}” is saved.", "success")
    else:
        flash(f"Nothing changed in “{policy.name}”.", "info")
    return redirect(url_for("policies.index"))
