"""Admin: the objection register across all changes and per change set, an objection's timeline, its moves,
notes and replies, and the exports for the file."""

from __future__ import annotations

import json
import math
from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField, RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from registry.domain import objections as rules
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, Objection
from registry.services import objections
from registry.services.objections import ObjectionError
from registry.web import params
from registry.web.access import permission_required
from registry.web.forms import plain_text

bp = Blueprint("admin_objections", __name__, url_prefix="/admin/objections")

MOVES = [SelectChoice(state, label) for state, label in rules.STATES.items()
         if state not in (rules.DRAFT, rules.RECEIVED)]


def strip(value):
    return value.strip() if isinstance(value, str) else value


class MoveForm(FlaskForm):
    to = SelectField("Move to", choices=MOVES, validators=[InputRequired("Choose the new state.")])
    outcome = SelectField("Outcome (when resolving)", choices=[SelectChoice("", "—"),
                                   *(SelectChoice(value, label) for value, label in rules.OUTCOMES.items())],
                          validators=[Optional()])
    reply = TextAreaField("Message to the customer (optional; mailed with the new state)", filters=[strip],
                          validators=[Optional(), Length(max=5000), plain_text])
    version = HiddenField()


class NoteForm(FlaskForm):
    body = TextAreaField("Note or reply", filters=[strip],
                         validators=[InputRequired("Write the note or reply."), Length(max=5000), plain_text])
    visibility = RadioField("Who sees it", default="internal",
                            choices=[SelectChoice("internal", "Internal note (staff only)"),
                                     SelectChoice("reply", "Reply to the customer (mailed, and on "
                                                           "their status page)")],
                            validators=[InputRequired("Choose who sees it.")])


@bp.app_template_global("objection_counts")
def objection_counts(change_set_id: int) -> dict[str, int]:
    """Open objections and everything received, for the dashboard and the change set's page."""
    rows = objections.register(db.session, change_set_id=change_set_id)
    return {"open": sum(o.kind == "objection" and o.status in rules.OPEN_STATES for o in rows),
            "total": len(rows)}


@bp.app_template_global("time_to")
def time_to(moment: datetime | None) -> str:
    """How long until a moment, in words staff read at a glance ("in 3 days", "in 5 hours")."""
    if moment is None:
        return ""
    seconds = (moment - now_utc()).total_seconds()
    if seconds <= 0:
        return "already passed"
    if seconds < 86400:
        hours = max(1, math.ceil(seconds / 3600))
        return f"in {hours} hour{'s' if hours != 1 else ''}"
    days = math.ceil(seconds / 86400)
    return f"in {days} day{'s' if days != 1 else ''}"


def _objection(objection_id: int) -> Objection:
    objection = db.session.get(Objection, objection_id)
    if objection is None or objection.status == rules.DRAFT:
        abort(404, "There is no such objection.")
    return objection


@bp.get("/")
@permission_required("view")
def index():
    status = params.choice("status", [s for s in rules.STATES if s != rules.DRAFT])
    change_set_id = params.positive_int("change_set", 0, maximum=params.MAX_ID) or None
    change_set = db.session.get(ChangeSet, change_set_id) if change_set_id else None
    if change_set_id and change_set is None:
        abort(404, "There is no such change set.")
    rows = objections.register(db.session, status=status, change_set_id=change_set_id)
    titles = dict(db.session.execute(select(ChangeSet.id, ChangeSet.title).where(
        ChangeSet.id.in_({o.change_set_id for o in rows}))).all()) if rows else {}
    return render_template("admin/objections/index.html", objections=rows, status=status, rules=rules,
                           change_set=change_set, titles=titles)


def _page(objection: Objection, move_form=None, note_form=None, status: int = 200):
    move_form = move_form or MoveForm(version=str(objection.version))
    move_form.version.data = move_form.version.data or str(objection.version)
    # Offer only the moves its state allows (the service refuses any other, whatever is posted).
    move_form.to.choices = [c for c in MOVES if c.value in rules.TRANSITIONS[objection.status]]
    change_set = db.session.get(ChangeSet, objection.change_set_id)
    return render_template(
        "admin/objections/show.html", objection=objection, change_set=change_set, rules=rules,
        items=objections.item_labels(db.session, objection),
        timeline=objections.timeline(objection, public=False),
        moves=rules.TRANSITIONS[objection.status], move_form=move_form, note_form=note_form or NoteForm(),
    ), status


@bp.get("/<int:objection_id>")
@permission_required("view")
def show(objection_id: int):
    return _page(_objection(objection_id))


def _version(raw: str | None) -> int:
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 10 else -1


@bp.post("/<int:objection_id>/move")
@permission_required("draft")
def move(objection_id: int):
    objection = _objection(objection_id)
    form = MoveForm()
    if not form.validate_on_submit():
        return _page(objection, move_form=form, status=422)
    try:
        objections.move(db.session, objection, to=form.to.data, outcome=form.outcome.data or None,
                        version=_version(form.version.data), reply=form.reply.data or "", actor=current_user,
                        now=now_utc())
    except ObjectionError as error:
        db.session.rollback()
        form.to.errors = [*form.to.errors, error.message]
        form.version.data = None
        return _page(db.session.get(Objection, objection_id), move_form=form,
                     status=409 if isinstance(error, objections.Stale) else 422)
    db.session.commit()
    flash(f"{objection.reference} is now {rules.STATES[objection.status].lower()}.", "success")
    return redirect(url_for(".show", objection_id=objection_id), 303)


@bp.post("/<int:objection_id>/notes")
@permission_required("draft")
def note(objection_id: int):
    objection = _objection(objection_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _page(objection, note_form=form, status=422)
    try:
        objections.add_note(db.session, objection, body=form.body.data, actor=current_user, now=now_utc(),
                            is_public=form.visibility.data == "reply")
    except ObjectionError as error:
        db.session.rollback()
        form.body.errors = [*form.body.errors, error.message]
        return _page(objection, note_form=form, status=422)
    db.session.commit()
    flash("Reply sent." if form.visibility.data == "reply" else "Note added.", "success")
    return redirect(url_for(".show", objection_id=objection_id), 303)


def _export_change_set(change_set_id: int) -> ChangeSet:
    return db.get_or_404(ChangeSet, change_set_id, description="There is no such change set.")


@bp.get("/change-sets/<int:change_set_id>/objections.csv")
@permission_required("view")
def export_csv(change_set_id: int):
    change_set = _export_change_set(change_set_id)
    body = objections.export_csv(objections.export_rows(db.session, change_set))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=objections-change-set-{change_set.id}.csv"})


@bp.get("/change-sets/<int:change_set_id>/objections.json")
@permission_required("view")
def export_json(change_set_id: int):
    change_set = _export_change_set(change_set_id)
    body = json.dumps({"change_set": {"id": change_set.id, "title": change_set.title},
                       "objections": objections.export_rows(db.session, change_set)},
                      indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f"attachment; filename=objections-change-set-{change_set.id}.json"})
