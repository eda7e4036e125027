"""Public objections: the form (from a notice's signed link or the public pages), confirmation, status."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from registry.domain import objections as rules
from registry.domain.clock import now_utc
from registry.extensions import db, limiter
from registry.models import ChangeSet
from registry.services import objections
from registry.services.objections import Closed, ObjectionError
from registry.web.forms import plain_text, single_line

bp = Blueprint("objections", __name__, url_prefix="/objections")

FORM_LIMIT = "10 per hour"
TOO_MANY = ("Too many objections have come from your network in the last hour. "
            "Please wait an hour and try again, or write to us.")
LINK_PROBLEMS = {
    "unknown": (404, "This link does not work",
                "The link may have been copied incompletely. Open the objection form of the change again "
                "to get a new one."),
    "expired": (410, "This link has expired",
                "Confirmation links work for 24 hours. Send the form again and we will mail a new link."),
    "used": (410, "This link has already been used",
             "Your objection is confirmed; the acknowledgement we mailed you has its reference and a link "
             "to follow it."),
}


def choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def strip(value):
    return value.strip() if isinstance(value, str) else value


class ObjectionForm(FlaskForm):
    kind = RadioField("Your decision", choices=choices(rules.KINDS.items()), default="objection",
                      validators=[InputRequired("Choose whether you object or approve.")])
    organisation = StringField("Organisation", filters=[strip],
                               validators=[InputRequired("Give your organisation's name."), Length(max=300),
                                           plain_text, single_line])
    contact_name = StringField("Your name", filters=[strip],
                               validators=[InputRequired("Give your name."), Length(max=200), plain_text,
                                           single_line])
    role = RadioField("Your organisation's role", choices=choices(rules.ROLES.items()),
                      validators=[InputRequired("Choose your role: controller, or processor acting for a "
                                                "controller.")])
    items = SelectMultipleField("What you object to", choices=[], validate_choice=False,
                                widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    grounds = TextAreaField("Grounds", validators=[Optional(), Length(max=rules.MAX_GROUNDS,
                                                   message=f"Keep the grounds under {rules.MAX_GROUNDS:,} "
                                                           "characters."), plain_text])
    asks_alternative = BooleanField("We ask for an alternative (for example, that our data is not "
                                    "processed by the new sub-processor)")

    def submission(self) -> objections.Submission:
        return objections.Submission(kind=self.kind.data, organisation=self.organisation.data,
                                     contact_name=self.contact_name.data, role=self.role.data,
                                     items=[str(i) for i in self.items.data or []],
                                     grounds=self.grounds.data or "",
                                     asks_alternative=bool(self.asks_alternative.data))


class PublicObjectionForm(ObjectionForm):
    email = StringField("Email address", filters=[strip],
                        validators=[InputRequired("Give your email address."), Length(max=320), plain_text,
                                    single_line])


@bp.app_template_global("announced_change")
def announced_change(change_set_id: int) -> ChangeSet | None:
    """A sub-processor entry names its pending change by id; its page shows how to object to it."""
    return objections.announced_change_set(db.session, change_set_id, now_utc())


@bp.after_request
def private(response):
    # Links carry personal tokens and pages show an address: never store them in a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _change_set(change_set_id: int) -> ChangeSet:
    change_set = objections.announced_change_set(db.session, change_set_id, now_utc())
    if change_set is None:
        abort(404, description="There is no announced change with this number.")
    return change_set


def _form_page(form, change_set: ChangeSet, *, action: str, email: str | None = None, status: int = 200,
               error: str = ""):
    form.items.choices = choices(objections.items_of(change_set))
    state = objections.window(change_set, now_utc())
    return render_template("objections/form.html", form=form, change_set=change_set, window=state,
                           action=action, email=email, error=error), status


def _closed(change_set: ChangeSet, message: str):
    return render_template("objections/closed.html", change_set=change_set, message=message), 409


def _refused(form, change_set: ChangeSet, error: ObjectionError, **page):
    db.session.rollback()
    if isinstance(error, Closed):
        return _closed(change_set, error.message)
    field = getattr(form, error.field, None)
    if field is not None:
        field.errors = [*field.errors, error.message]
    return _form_page(form, change_set, status=422, **page)


@bp.get("/<int:change_set_id>/")
def new(change_set_id: int):
    change_set = _change_set(change_set_id)
    return _form_page(PublicObjectionForm(), change_set,
                      action=url_for(".submit", change_set_id=change_set.id))


@bp.post("/<int:change_set_id>/")
@limiter.shared_limit(FORM_LIMIT, scope="objection-forms", error_message=TOO_MANY)
def submit(change_set_id: int):
    change_set = _change_set(change_set_id)
    page = {"action": url_for(".submit", change_set_id=change_set.id)}
    state = objections.window(change_set, now_utc())
    if not state.is_open:
        return _closed(change_set, state.closed_message)
    form = PublicObjectionForm()
    form.items.choices = choices(objections.items_of(change_set))
    if not form.validate_on_submit():
        return _form_page(form, change_set, status=422, **page)
    try:
        objections.submit_from_form(db.session, change_set, form.email.data, form.submission(), now_utc())
    except ObjectionError as error:
        return _refused(form, change_set, error, **page)
    db.session.commit()
    return render_template("objections/sent.html", change_set=change_set)


def _notice_link(notice_token: str) -> objections.NoticeLink:
    link = objections.read_notice_token(db.session, notice_token)
    if link is None:
        abort(404, description="This objection link does not work. Use the link in the notice we mailed "
                               "you, or the objection form on the change's page.")
    return link


@bp.get("/from-notice/<notice_token>")
def from_notice(notice_token: str):
    link = _notice_link(notice_token)
    return _form_page(ObjectionForm(), link.change_set, email=link.delivery.email,
                      action=url_for(".submit_from_notice", notice_token=notice_token))


@bp.post("/from-notice/<notice_token>")
@limiter.shared_limit(FORM_LIMIT, scope="objection-forms", error_message=TOO_MANY)
def submit_from_notice(notice_token: str):
    link = _notice_link(notice_token)
    page = {"action": url_for(".submit_from_notice", notice_token=notice_token), "email": link.delivery.email}
    state = objections.window(link.change_set, now_utc())
    if not state.is_open:
        return _closed(link.change_set, state.closed_message)
    form = ObjectionForm()
    form.items.choices = choices(objections.items_of(link.change_set))
    if not form.validate_on_submit():
        return _form_page(form, link.change_set, status=422, **page)
    try:
        objection = objections.submit_from_notice(db.session, link, form.submission(), now_utc())
    except ObjectionError as error:
        return _refused(form, link.change_set, error, **page)
    db.session.commit()
    return redirect(url_for(".status", status_token=objections.status_token(objection.id), sent=1), 303)


def _link_problem(state: str):
    status, title, explanation = LINK_PROBLEMS[state]
    return render_template("objections/link_problem.html", title=title, explanation=explanation), status


@bp.get("/confirm/<confirmation>")
def confirm_page(confirmation: str):
    check = objections.check_confirmation(db.session, confirmation, now_utc())
    if check.state != "valid":
        return _link_problem(check.state)
    change_set = db.session.get(ChangeSet, check.objection.change_set_id)
    return render_template("objections/confirm.html", confirmation=confirmation, objection=check.objection,
                           change_set=change_set, kinds=rules.KINDS)


@bp.post("/confirm/<confirmation>")
def confirm(confirmation: str):
    check = objections.confirm(db.session, confirmation, now_utc())
    if check.state != "valid":
        db.session.rollback()
        return _link_problem(check.state)
    objection_id = check.objection.id
    db.session.commit()
    return redirect(url_for(".status", status_token=objections.status_token(objection_id), sent=1), 303)


@bp.get("/status/<status_token>")
def status(status_token: str):
    objection = objections.read_status_token(db.session, status_token)
    if objection is None:
        abort(404, description="This status link does not work. Use the link in the acknowledgement we "
                               "mailed you.")
    change_set = db.session.get(ChangeSet, objection.change_set_id)
    return render_template("objections/status.html", objection=objection, change_set=change_set,
                           items=objections.item_labels(db.session, objection),
                           timeline=objections.timeline(objection, public=True), rules=rules)
