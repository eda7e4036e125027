"""Staff: customer organisations, their domains, contractual notice terms and designated contacts."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from registry.domain import organisations as rules
from registry.domain.notice import MAX_LENGTH, MAX_OBJECTION_DAYS
from registry.extensions import db
from registry.models import Organisation
from registry.services import organisations
from registry.services.organisations import OrganisationError
from registry.web.access import permission_required
from registry.web.forms import plain_text, single_line

bp = Blueprint("organisations", __name__, url_prefix="/admin/organisations")

UNIT_CHOICES = [SelectChoice("", "The notice policies' terms apply"),
                SelectChoice("calendar_days", "Calendar days"),
                SelectChoice("business_days", "Business days")]
TERM_RANGE = f"The notice term is a whole number of days from 1 to {MAX_LENGTH}."
WINDOW_RANGE = f"The objection window is a whole number of days from 1 to {MAX_OBJECTION_DAYS}."


def strip(value):
    return value.strip() if isinstance(value, str) else value


def domain_list(form, field) -> None:
    try:
        form.parsed_domains = rules.parse_domains(field.data or "")
    except ValueError as error:
        raise ValidationError(str(error)) from None
    if not form.parsed_domains:
        raise ValidationError("Give at least one email domain, e.g. example.com.")


def contact_list(form, field) -> None:
    try:
        form.parsed_contacts = organisations.parse_contacts(field.data or "")
    except OrganisationError as error:
        raise ValidationError(str(error)) from None


class OrganisationForm(FlaskForm):
    parsed_domains: list[str] = []
    parsed_contacts: list[str] = []

    name = StringField("Name", filters=[strip],
                       validators=[DataRequired("Give the organisation's name."), Length(max=200), plain_text,
                                   single_line])
    domains = TextAreaField("Email domains (one per line or comma-separated; subdomains are included)",
                            validators=[Length(max=5000), plain_text, domain_list])
    contract_reference = StringField("Contract reference", filters=[strip],
                                     validators=[Optional(), Length(max=200), plain_text, single_line])
    notice_length = IntegerField("Contractual notice term (days)",
                                 validators=[Optional(), NumberRange(1, MAX_LENGTH, TERM_RANGE)])
    notice_unit = RadioField("Counted in", choices=UNIT_CHOICES, default="", validate_choice=True)
    objection_days = IntegerField("Objection window (calendar days after the notice)",
                                  validators=[Optional(), NumberRange(1, MAX_OBJECTION_DAYS, WINDOW_RANGE)])
    contacts = TextAreaField("Designated contacts (addresses that always receive material notices)",
                             validators=[Length(max=10_000), plain_text, contact_list])

    def fill(self, organisation: Organisation) -> None:
        self.name.data = organisation.name
        self.domains.data = "\n".join(d.domain for d in organisation.domains)
        self.contract_reference.data = organisation.contract_reference
        self.notice_length.data = organisation.notice_length
        self.notice_unit.data = organisation.notice_unit or ""
        self.objection_days.data = organisation.objection_days
        self.contacts.data = "\n".join(c.email for c in organisation.contacts)


def _get(organisation_id: int) -> Organisation:
    return db.get_or_404(Organisation, organisation_id, description="There is no such organisation.")


def _form_page(form: OrganisationForm, organisation: Organisation | None, status: int = 200):
    return render_template("organisations/form.html", form=form, organisation=organisation), status


def _save(form: OrganisationForm, organisation: Organisation | None):
    if not form.validate_on_submit():
        return _form_page(form, organisation, 422)
    try:
        saved = organisations.save(
            db.session, organisation, name=form.name.data,
            contract_reference=form.contract_reference.data or "", domains=form.parsed_domains,
            contacts=form.parsed_contacts, notice_length=form.notice_length.data,
            notice_unit=form.notice_unit.data or None, objection_days=form.objection_days.data,
            actor=current_user)
    except OrganisationError as error:
        db.session.rollback()
        getattr(form, error.field).errors = [*getattr(form, error.field).errors, str(error)]
        return _form_page(form, organisation, 422)
    db.session.commit()
    flash(f"Organisation {saved.name} saved.", "success")
    return redirect(url_for("organisations.show", organisation_id=saved.id))


@bp.get("/")
@permission_required("view")
def index():
    rows = [(o, organisations.members(db.session, o, limit=0)[0])
            for o in organisations.all_organisations(db.session)]
    return render_template("organisations/index.html", rows=rows)


@bp.get("/new")
@permission_required("manage_organisations")
def new():
    return _form_page(OrganisationForm(), None)


@bp.post("/new")
@permission_required("manage_organisations")
def create():
    return _save(OrganisationForm(), None)


@bp.get("/<int:organisation_id>")
@permission_required("view")
def show(organisation_id: int):
    organisation = _get(organisation_id)
    count, members = organisations.members(db.session, organisation)
    term = (rules.Term(organisation.notice_length, organisation.notice_unit)
            if organisation.notice_length else None)
    return render_template("organisations/show.html", organisation=organisation, count=count, members=members,
                           term=term, delete_form=FlaskForm())


@bp.get("/<int:organisation_id>/edit")
@permission_required("manage_organisations")
def edit(organisation_id: int):
    organisation = _get(organisation_id)
    form = OrganisationForm()
    form.fill(organisation)
    return _form_page(form, organisation)


@bp.post("/<int:organisation_id>/edit")
@permission_required("manage_organisations")
def update(organisation_id: int):
    return _save(OrganisationForm(), _get(organisation_id))


@bp.post("/<int:organisation_id>/delete")
@permission_required("manage_organisations")
def delete(organisation_id: int):
    organisation = _get(organisation_id)
    form = FlaskForm()
    if not form.validate_on_submit():
        flash("The form was not accepted; please try again.", "error")
        return redirect(url_for("organisations.show", organisation_id=organisation.id))
    name = organisation.name
    organisations.delete(db.session, organisation, actor=current_user)
    db.session.commit()
    flash(f"Organisation {name} deleted: its terms no longer apply to changes scheduled from now on.",
          "success")
    return redirect(url_for("organisations.index"))
