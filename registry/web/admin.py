"""The legal staff workspace: dashboard, change sets, the document editor and the scheduling form."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pycountry
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from registry.domain import chain as chains
from registry.domain import identifiers, ordering
from registry.domain import subprocessors as sp
from registry.domain.clock import now_utc
from registry.domain.diff import compare
from registry.domain.markdown import MAX_CHARACTERS, DocumentTooLarge, check_limits, render_markdown
from registry.domain.roles import can
from registry.domain.slugs import PATTERN as SLUG_PATTERN
from registry.domain.slugs import check_slug
from registry.extensions import db
from registry.models import (
    ChangeSet,
    ChangeStatus,
    Delivery,
    Document,
    DocumentVersion,
    SubProcessorRecord,
    User,
)
from registry.services import health, notices, publishing, reading, workflow
from registry.services.publishing import RECORD_FIELDS
from registry.services.workflow import WorkflowError
from registry.web import params
from registry.web.access import permission_required
from registry.web.forms import plain_text, single_line

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50
RECENT_EFFECTIVE = 10
LATEST = datetime.max.replace(tzinfo=UTC)
MATERIAL_CHOICES = [SelectChoice("material", "Material"), SelectChoice("non-material", "Non-material")]
STATUS_LABELS = {s.value: s.value.replace("_", " ").capitalize() for s in ChangeStatus}


# --- input checks ------------------------------------------------------------------------------

def strip(value):
    return value.strip() if isinstance(value, str) else value


def comma_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def country_codes(form, field) -> None:
    codes = comma_list(field.data)
    unknown = [c for c in codes if len(c) != 2 or pycountry.countries.get(alpha_2=c.upper()) is None]
    if unknown:
        raise ValidationError(f"Not ISO 3166 country codes: {', '.join(unknown[:10])}. Use two letters, "
                              "e.g. DE, PL, US.")
    if not codes:
        raise ValidationError("Name at least one country where data is processed, e.g. DE.")


def web_address(form, field) -> None:
    if field.data and not field.data.startswith(("https://", "http://")):
        raise ValidationError("A website starts with https:// (or http://).")


def slug_check(form, field) -> None:
    try:
        check_slug(field.data or "")
    except ValueError as error:
        raise ValidationError(str(error)) from None


def year_range(form, field) -> None:
    if field.data and not 2000 <= field.data.year <= 2200:
        raise ValidationError("Choose a date between the years 2000 and 2200.")


def identifier(check):
    """A validator from a domain check (domain/identifiers): its message beside the field, the value
    written back as the check returns it (an LEI uppercase)."""
    def validate(form, field) -> None:
        if field.data:
            try:
                field.data = check(field.data)
            except identifiers.IdentifierError as error:
                raise ValidationError(str(error)) from None
    return validate


TEXT = [strip]
SERVICE_TYPE_CHOICES = [SelectChoice("", "Not given")] + [
    SelectChoice(code, f"{code} {label}") for code, label in identifiers.ICT_SERVICE_TYPES.items()]
# Blank rows under the chain for a form that works without JavaScript.
BLANK_CHAIN_ROWS = 3


class ChangeSetForm(FlaskForm):
    title = StringField("Title", filters=TEXT,
                        validators=[DataRequired("Give the change set a title."), Length(max=300),
                                    plain_text, single_line])
    summary = TextAreaField("Summary for readers", filters=TEXT,
                            validators=[DataRequired("Tell readers what changes and why."),
                                        Length(max=5000), plain_text])
    materiality = RadioField("Is this a material change?", choices=MATERIAL_CHOICES,
                             validators=[InputRequired("Choose material or non-material.")])


def within_limits(form, field) -> None:
    """A document must render and compare in bounded time (domain/markdown.check_limits)."""
    try:
        check_limits(field.data or "")
    except DocumentTooLarge as error:
        raise ValidationError(str(error)) from None


class DocumentVersionForm(FlaskForm):
    source = TextAreaField("Markdown source",
                           validators=[DataRequired("The document cannot be empty."),
                                       Length(max=MAX_CHARACTERS), plain_text, within_limits])
    summary = TextAreaField("Summary of changes for readers", filters=TEXT,
                            validators=[DataRequired("Summarise the changes for readers."),
                                        Length(max=5000), plain_text])
    materiality = RadioField("Is this a material change?", choices=MATERIAL_CHOICES,
                             validators=[InputRequired("Choose material or non-material.")])


class ChainLinkForm(Form):
    """One row of the chain; the rows are checked together (loops, parents) by domain/chain."""

    name = StringField("Name", filters=TEXT,
                       validators=[Length(max=chains.MAX_TEXT), plain_text, single_line])
    legal_entity = StringField("Legal entity", filters=TEXT,
                               validators=[Length(max=chains.MAX_TEXT), plain_text, single_line])
    country = StringField("Country", filters=TEXT, validators=[Length(max=2), plain_text, single_line])
    service = StringField("Service", filters=TEXT,
                          validators=[Length(max=chains.MAX_TEXT), plain_text, single_line])
    service_type = SelectField("ICT service type", choices=SERVICE_TYPE_CHOICES, validate_choice=False,
                               validators=[Length(max=3)])
    lei = StringField("LEI", filters=TEXT, validators=[Length(max=40), plain_text, single_line])
    euid = StringField("EUID", filters=TEXT, validators=[Length(max=80), plain_text, single_line])
    parent = StringField("Works for (name of another row; empty: this sub-processor)", filters=TEXT,
                         validators=[Length(max=chains.MAX_TEXT), plain_text, single_line])


class SubProcessorForm(FlaskForm):
    slug = StringField("Slug (in the address of its page)", filters=TEXT,
                       validators=[DataRequired("Choose a slug, e.g. acme-hosting."), slug_check])
    name = StringField("Name", filters=TEXT, validators=[DataRequired("Give the name."), Length(max=200),
                                                        plain_text, single_line])
    legal_entity = StringField("Legal entity", filters=TEXT,
                               validators=[DataRequired("Give the contracting legal entity."),
                                           Length(max=300), plain_text, single_line])
    address = TextAreaField("Address", filters=TEXT,
                            validators=[DataRequired("Give the registered address."), Length(max=2000),
                                        plain_text])
    contact = StringField("Contact", filters=TEXT,
                          validators=[DataRequired("Give a privacy contact."), Length(max=300), plain_text,
                                      single_line])
    purpose = StringField("Purpose", filters=TEXT,
                          validators=[DataRequired("Give the purpose, e.g. Hosting."), Length(max=120),
                                      plain_text, single_line])
    description = TextAreaField("Processing activity", filters=TEXT,
                                validators=[Optional(), Length(max=5000), plain_text])
    data_categories = StringField("Categories of personal data (comma-separated)", filters=TEXT,
                                  validators=[Optional(), Length(max=2000), plain_text, single_line])
    countries = StringField("Processing locations (ISO country codes, comma-separated)", filters=TEXT,
                            validators=[Length(max=500), plain_text, country_codes])
    transfer_mechanism = StringField("Transfer mechanism", filters=TEXT,
                                     validators=[DataRequired("Give the transfer mechanism, e.g. "
                                                              "Standard Contractual Clauses."),
                                                 Length(max=120), plain_text, single_line])
    website = StringField("Website", filters=TEXT,
                          validators=[Optional(), Length(max=300), plain_text, single_line, web_address])
    feature = StringField("Applies to (optional feature)", filters=TEXT,
                          validators=[Optional(), Length(max=120), plain_text, single_line])
    lei = StringField("LEI (ISO 17442)", filters=TEXT,
                      validators=[Optional(), Length(max=40), plain_text, single_line,
                                  identifier(identifiers.check_lei)])
    euid = StringField("EUID (EU business register identifier)", filters=TEXT,
                       validators=[Optional(), Length(max=80), plain_text, single_line,
                                   identifier(identifiers.check_euid)])
    latin_name = StringField("Legal name in Latin script", filters=TEXT,
                             validators=[Optional(), Length(max=300), plain_text, single_line])
    hq_country = StringField("Headquarters country", filters=TEXT,
                             validators=[Optional(), Length(max=10), plain_text, single_line,
                                         identifier(identifiers.check_country)])
    parent_name = StringField("Ultimate parent", filters=TEXT,
                              validators=[Optional(), Length(max=300), plain_text, single_line])
    parent_lei = StringField("Ultimate parent's LEI", filters=TEXT,
                             validators=[Optional(), Length(max=40), plain_text, single_line,
                                         identifier(identifiers.check_lei)])
    ict_service_type = SelectField("ICT service type (DORA)", choices=SERVICE_TYPE_CHOICES,
                                   validators=[Optional()])
    # One more than the limit, so that a form with too many rows is refused rather than cut short.
    chain = FieldList(FormField(ChainLinkForm), min_entries=BLANK_CHAIN_ROWS,
                      max_entries=chains.MAX_LINKS + 1)
    summary = TextAreaField("Summary of the change for readers", filters=TEXT,
                            validators=[DataRequired("Summarise the change for readers."), Length(max=5000),
                                        plain_text])

    def validate_chain(self, field) -> None:
        if any(row.errors for row in field.entries):
            return
        rows = [row.data for row in field.entries]
        if len(rows) > chains.MAX_LINKS:
            raise ValidationError(f"A chain lists at most {chains.MAX_LINKS} sub-processors.")
        try:
            self.checked_chain = chains.check_chain(rows)
        except chains.ChainError as error:
            if error.row is None:
                raise ValidationError(str(error)) from None
            cell = field.entries[error.row][error.field]
            cell.errors = [*cell.errors, str(error)]
            raise ValidationError(str(error)) from None

    def fill_chain(self, links: tuple[chains.Link, ...]) -> None:
        """The stored chain, then blank rows to add to it."""
        while self.chain.entries:
            self.chain.pop_entry()
        for link in links:
            self.chain.append_entry(link.as_dict())
        for _ in range(BLANK_CHAIN_ROWS):
            self.chain.append_entry()

    def record_fields(self) -> dict:
        values = {name: getattr(self, name).data or "" for name in RECORD_FIELDS if name != "chain"}
        values["chain"] = [link.as_dict() for link in self.checked_chain]
        values["data_categories"] = comma_list(self.data_categories.data)
        values["countries"] = sorted({c.upper() for c in comma_list(self.countries.data)})
        values["feature"] = self.feature.data or None
        return values


class RemoveForm(FlaskForm):
    summary = TextAreaField("Why it is removed (for readers)", filters=TEXT,
                            validators=[DataRequired("Tell readers why it is removed."), Length(max=5000),
                                        plain_text])


class NoteForm(FlaskForm):
    note = TextAreaField("Note", filters=TEXT, validators=[Optional(), Length(max=5000), plain_text])


class WithdrawForm(NoteForm):
    # Asked only of an announced change, whose withdrawal customers are told of.
    confirm = BooleanField("I confirm the withdrawal")


class CommentForm(FlaskForm):
    body = TextAreaField("Comment", filters=TEXT,
                         validators=[DataRequired("Write a comment."), Length(max=workflow.MAX_COMMENT),
                                     plain_text])


class ScheduleForm(FlaskForm):
    effective_date = DateField("Effective date (existing customers)",
                               validators=[InputRequired("Choose the effective date."), year_range])
    effective_time = TimeField("Time", validators=[InputRequired("Choose a time, e.g. 00:00.")])
    new_customers_date = DateField("Effective for new customers from (optional)",
                                   validators=[Optional(), year_range])
    new_customers_time = TimeField("Time", validators=[Optional()])
    # The older pending change sets the page listed; ticking the box withdraws those the date overtakes.
    supersede = BooleanField("Supersede: withdraw the pending changes listed above that this date comes "
                             "before (each gets its withdrawal notice)")
    supersede_ids = HiddenField()

    def superseded(self) -> list[int]:
        if not self.supersede.data:
            return []
        return [int(i) for i in (self.supersede_ids.data or "").split(",") if i.isascii() and i.isdigit()]


# --- helpers ---------------------------------------------------------------------------------------

def legal_zone() -> str:
    return current_app.config["REGISTRY"].legal_timezone


def is_material(form) -> bool:
    return form.materiality.data == "material"


def get_change_set(change_set_id: int) -> ChangeSet:
    return db.get_or_404(ChangeSet, change_set_id, description="There is no such change set.")


def get_document(slug: str) -> Document:
    document = reading.document(db.session, slug)
    if document is None:
        abort(404, "There is no such document.")
    return document


def invalid(template: str, **context):
    """A form shown again with its errors: nothing was stored."""
    return render_template(template, **context), 422


def latest_public_version(document: Document, excluding: ChangeSet | None = None) -> DocumentVersion | None:
    versions = [v.version for v in reading.versions(db.session, document)
                if excluding is None or v.change_set.id != excluding.id]
    return versions[-1] if versions else None


def public_entries() -> dict[str, sp.Listed]:
    """Every sub-processor on the public list once every announced change is in force."""
    return sp.state_at(reading.subprocessor_events(db.session), LATEST)


def entry_of(record: SubProcessorRecord) -> sp.Entry:
    def value(name: str):
        if name == "chain":
            return chains.chain_from_json(record.chain)
        if name in ("data_categories", "countries"):
            return tuple(getattr(record, name))
        return getattr(record, name)
    return sp.Entry(slug=record.subprocessor.slug, **{name: value(name) for name in RECORD_FIELDS})


def record_state(entry: sp.Entry) -> dict:
    """An entry's fields as a record stores them (lists, the chain as dicts)."""
    def value(name: str):
        field = getattr(entry, name)
        if name == "chain":
            return [link.as_dict() for link in field]
        return list(field) if isinstance(field, tuple) else field
    return {name: value(name) for name in RECORD_FIELDS}


@dataclass(frozen=True)
class Actions:
    edit: bool
    submit: bool
    approve: bool
    schedule: bool
    return_to_draft: bool
    withdraw: bool
    comment: bool
    four_eyes_block: bool


def actions_for(change_set: ChangeSet, user: User) -> Actions:
    status = change_set.status
    drafter, approver = can(user.role, "draft"), can(user.role, "approve")
    author = workflow.is_author(change_set, user)
    withdrawable = status not in (ChangeStatus.EFFECTIVE, ChangeStatus.WITHDRAWN)
    return Actions(
        edit=drafter and status in workflow.EDITABLE,
        submit=drafter and status == ChangeStatus.DRAFT,
        approve=approver and not author and status == ChangeStatus.IN_REVIEW,
        schedule=approver and not author and status == ChangeStatus.APPROVED,
        return_to_draft=drafter and status in (ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED),
        withdraw=withdrawable and (approver if change_set.published_at else drafter),
        comment=drafter,
        four_eyes_block=approver and author and status in (ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED),
    )


def legal_moment(day: date, at: time) -> datetime:
    """A date and wall-clock time in the legal time zone, as an aware UTC instant."""
    return datetime.combine(day, at, ZoneInfo(legal_zone())).astimezone(UTC)


def round_up_to_minute(moment: datetime) -> datetime:
    if moment.second or moment.microsecond:
        return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return moment


# --- pages ---------------------------------------------------------------------------------------

@bp.get("/")
@permission_required("view")
def dashboard():
    now = now_utc()

    def with_status(*statuses, order=None, limit=None):
        query = select(ChangeSet).where(ChangeSet.status.in_(statuses)).order_by(
            order if order is not None else ChangeSet.id.desc())
        return list(db.session.scalars(query.limit(limit) if limit else query))

    scheduled = with_status(ChangeStatus.SCHEDULED, order=ChangeSet.effective_at)
    in_notice = with_status(ChangeStatus.IN_NOTICE, order=ChangeSet.effective_at)
    return render_template(
        "admin/dashboard.html", now=now, health=health.worker_health(db.session, now),
        drafts=with_status(ChangeStatus.DRAFT),
        awaiting=with_status(ChangeStatus.IN_REVIEW, ChangeStatus.APPROVED, order=ChangeSet.id),
        scheduled=scheduled,
        progress=notices.progress(db.session, [c.id for c in scheduled + in_notice]),
        in_notice=[(c, max(0, math.ceil((c.effective_at - now).total_seconds() / 86400))) for c in in_notice],
        effective=with_status(ChangeStatus.EFFECTIVE, order=ChangeSet.effective_at.desc(),
                              limit=RECENT_EFFECTIVE),
    )


@bp.get("/change-sets/")
@permission_required("view")
def change_sets():
    status = params.choice("status", list(STATUS_LABELS))
    page = params.positive_int("page", 1)
    query = select(ChangeSet)
    if status:
        query = query.where(ChangeSet.status == status)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(ChangeSet.id.desc()).offset((page - 1) * PAGE_SIZE)
                              .limit(PAGE_SIZE)).all()
    return render_template("admin/change_sets.html", change_sets=rows, status=status, page=page,
                           pages=max(1, math.ceil(total / PAGE_SIZE)), total=total,
                           statuses=STATUS_LABELS)


@bp.get("/change-sets/new")
@permission_required("draft")
def new_change_set():
    return render_template("admin/change_set_form.html", form=ChangeSetForm(), change_set=None)


@bp.post("/change-sets/new")
@permission_required("draft")
def create_change_set():
    form = ChangeSetForm()
    if not form.validate_on_submit():
        return invalid("admin/change_set_form.html", form=form, change_set=None)
    change_set = workflow.create(db.session, title=form.title.data, summary=form.summary.data,
                                 is_material=is_material(form), actor=current_user)
    db.session.commit()
    flash("Change set created. Add a document version or a sub-processor change.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


@bp.get("/change-sets/<int:change_set_id>")
@permission_required("view")
def change_set(change_set_id: int):
    change_set = db.session.scalar(
        select(ChangeSet).where(ChangeSet.id == change_set_id)
        .options(selectinload(ChangeSet.document_versions), selectinload(ChangeSet.subprocessor_records),
                 selectinload(ChangeSet.events), selectinload(ChangeSet.comments))
    )
    if change_set is None:
        abort(404, "There is no such change set.")
    versions = []
    for version in change_set.document_versions:
        old = latest_public_version(version.document, excluding=change_set)
        if version.number is not None and old is not None and old.number > version.number:
            old = next((v for v in version.document.versions if v.number == version.number - 1), None)
        redline = compare(old.source_md if old else "", version.source_md,
                          old_label=f"Version {old.number}" if old else "Nothing yet",
                          new_label=f"Version {version.number}" if version.number else "This draft")
        versions.append((version, old, redline))
    entries = public_entries()
    records = []
    for record in change_set.subprocessor_records:
        before = entries.get(record.subprocessor.slug)
        changes = (sp.field_changes(before.entry, entry_of(record))
                   if before and record.action == "change" else ())
        records.append((record, changes))
    authors = {u.id: u.email for u in db.session.scalars(
        select(User).where(User.id.in_({c.author_id for c in change_set.comments})))}
    return render_template(
        "admin/change_set.html", change_set=change_set, versions=versions, records=records,
        material_reasons=workflow.materiality(db.session, change_set)[1],
        actions=actions_for(change_set, current_user), documents=reading.documents(db.session),
        entries=sorted(entries.values(), key=lambda item: item.entry.name.casefold()),
        comment_form=CommentForm(),
        comment_authors=authors, statuses=STATUS_LABELS,
    )


@bp.get("/change-sets/<int:change_set_id>/edit")
@permission_required("draft")
def edit_change_set(change_set_id: int):
    change_set = get_change_set(change_set_id)
    form = ChangeSetForm(obj=change_set)
    reasons = workflow.materiality(db.session, change_set)[1]
    form.materiality.data = "material" if change_set.is_material or reasons else "non-material"
    return render_template("admin/change_set_form.html", form=form, change_set=change_set,
                           material_reasons=reasons)


@bp.post("/change-sets/<int:change_set_id>/edit")
@permission_required("draft")
def update_change_set(change_set_id: int):
    change_set = get_change_set(change_set_id)
    form = ChangeSetForm()
    reasons = workflow.materiality(db.session, change_set)[1]
    if not form.validate_on_submit():
        return invalid("admin/change_set_form.html", form=form, change_set=change_set,
                       material_reasons=reasons)
    try:
        workflow.edit_details(db.session, change_set, title=form.title.data, summary=form.summary.data,
                              is_material=is_material(form), actor=current_user)
    except WorkflowError as error:
        db.session.rollback()
        form.title.errors = [str(error)]
        return invalid("admin/change_set_form.html", form=form, change_set=change_set,
                       material_reasons=reasons)
    db.session.commit()
    flash("Change set saved.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


@bp.get("/change-sets/<int:change_set_id>/documents/<slug:slug>")
@permission_required("draft")
def edit_document(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    document = get_document(slug)
    current = latest_public_version(document, excluding=change_set)
    draft = next((v for v in change_set.document_versions if v.document_id == document.id), None)
    form = DocumentVersionForm()
    form.source.data = draft.source_md if draft else (current.source_md if current else "")
    form.summary.data = draft.summary if draft else ""
    material = draft.is_material if draft else change_set.is_material
    form.materiality.data = "material" if material else "non-material"
    return render_template("admin/document_form.html", form=form, change_set=change_set, document=document,
                           current=current, preview=None)


@bp.post("/change-sets/<int:change_set_id>/documents/<slug:slug>")
@permission_required("draft")
def save_document(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    document = get_document(slug)
    current = latest_public_version(document, excluding=change_set)
    form = DocumentVersionForm()
    context = dict(form=form, change_set=change_set, document=document, current=current, preview=None)
    if request.form.get("action") == "preview":
        # The no-JavaScript preview: shows the rendering and the redline, stores nothing.
        form.validate()
        source = form.source.data or ""
        if not form.source.errors:
            context["preview"] = preview_of(source, current)
        return render_template("admin/document_form.html", **context), (422 if form.source.errors else 200)
    if not form.validate():
        return invalid("admin/document_form.html", **context)
    try:
        workflow.save_document_version(db.session, change_set, document, source_md=form.source.data,
                                       summary=form.summary.data, is_material=is_material(form),
                                       actor=current_user)
    except WorkflowError as error:
        db.session.rollback()
        form.source.errors = [str(error)]
        return invalid("admin/document_form.html", **context)
    db.session.commit()
    flash(f"The new version of {document.title} is saved in this change set.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


def preview_of(source: str, current: DocumentVersion | None) -> dict:
    rendered = render_markdown(source)
    redline = compare(current.source_md if current else "", source,
                      old_label=f"Version {current.number}" if current else "Nothing yet",
                      new_label="This draft")
    return {"html": rendered.html, "redline": redline.redline_html,
            "words_inserted": redline.words_inserted, "words_deleted": redline.words_deleted}


@bp.post("/preview")
@permission_required("draft")
def preview():
    """Live preview for the editor: sanitised HTML and the redline against the current version."""
    source = request.form.get("source")
    if source is None:
        return jsonify(error={"status": 400, "message": "Send the Markdown in the 'source' field."}), 400
    try:
        check_limits(source)
    except DocumentTooLarge as error:
        return jsonify(error={"status": 413, "message": str(error)}), 413
    slug = request.form.get("document", "")
    document = reading.document(db.session, slug) if slug and re.fullmatch(SLUG_PATTERN, slug) else None
    if slug and document is None:
        return jsonify(error={"status": 404, "message": f"There is no document {slug[:80]!r}."}), 404
    change_set_id = params.row_id(request.form.get("change_set"))
    excluding = db.session.get(ChangeSet, change_set_id) if change_set_id else None
    current = latest_public_version(document, excluding=excluding) if document else None
    return jsonify(preview_of(source.replace("\x00", "\N{REPLACEMENT CHARACTER}"), current))


def _subprocessor_form_page(change_set: ChangeSet, form: SubProcessorForm, *, slug: str | None,
                            status: int = 200):
    return render_template("admin/subprocessor_form.html", form=form, change_set=change_set,
                           slug=slug), status


@bp.get("/change-sets/<int:change_set_id>/subprocessors/new")
@permission_required("draft")
def add_subprocessor(change_set_id: int):
    return _subprocessor_form_page(get_change_set(change_set_id), SubProcessorForm(), slug=None)


@bp.post("/change-sets/<int:change_set_id>/subprocessors/new")
@permission_required("draft")
def create_subprocessor(change_set_id: int):
    change_set = get_change_set(change_set_id)
    form = SubProcessorForm()
    if not form.validate_on_submit():
        return _subprocessor_form_page(change_set, form, slug=None, status=422)
    return _save_subprocessor(change_set, form, form.slug.data, "add")


def _draft_and_public(change_set: ChangeSet, slug: str) -> tuple[SubProcessorRecord | None, sp.Listed | None]:
    """The change set's own record for `slug` and its public entry; a 404 when it has neither."""
    draft = next((r for r in change_set.subprocessor_records if r.subprocessor.slug == slug), None)
    public = public_entries().get(slug)
    if draft is None and public is None:
        abort(404, "There is no such sub-processor.")
    return draft, public


@bp.get("/change-sets/<int:change_set_id>/subprocessors/<slug:slug>")
@permission_required("draft")
def edit_subprocessor(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    draft, public = _draft_and_public(change_set, slug)
    form = SubProcessorForm()
    form.slug.data = slug
    source = entry_of(draft) if draft else public.entry
    for name in RECORD_FIELDS:
        value = getattr(source, name)
        if name == "chain":
            form.fill_chain(value)
        else:
            getattr(form, name).data = ", ".join(value) if isinstance(value, tuple) else (value or "")
    form.summary.data = draft.summary if draft else ""
    return _subprocessor_form_page(change_set, form, slug=slug)


@bp.post("/change-sets/<int:change_set_id>/subprocessors/<slug:slug>")
@permission_required("draft")
def update_subprocessor(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    _draft_and_public(change_set, slug)
    form = SubProcessorForm()
    form.slug.data = slug
    if not form.validate_on_submit():
        return _subprocessor_form_page(change_set, form, slug=slug, status=422)
    return _save_subprocessor(change_set, form, slug, "change")


def _save_subprocessor(change_set: ChangeSet, form: SubProcessorForm, slug: str, action: str):
    try:
        workflow.save_subprocessor_change(db.session, change_set, slug, action, fields=form.record_fields(),
                                          summary=form.summary.data, actor=current_user)
    except WorkflowError as error:
        db.session.rollback()
        (form.slug if action == "add" else form.name).errors = [str(error)]
        return _subprocessor_form_page(change_set, form, slug=None if action == "add" else slug, status=422)
    db.session.commit()
    flash(f"Sub-processor {form.name.data} saved in this change set.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


def _listed_or_404(slug: str) -> sp.Listed:
    public = public_entries().get(slug)
    if public is None:
        abort(404, "There is no such sub-processor on the public list.")
    return public


@bp.get("/change-sets/<int:change_set_id>/subprocessors/<slug:slug>/remove")
@permission_required("draft")
def remove_subprocessor(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    return render_template("admin/remove_form.html", form=RemoveForm(), change_set=change_set,
                           entry=_listed_or_404(slug).entry)


@bp.post("/change-sets/<int:change_set_id>/subprocessors/<slug:slug>/remove")
@permission_required("draft")
def save_removal(change_set_id: int, slug: str):
    change_set = get_change_set(change_set_id)
    public = _listed_or_404(slug)
    form = RemoveForm()
    if not form.validate_on_submit():
        return render_template("admin/remove_form.html", form=form, change_set=change_set,
                               entry=public.entry), 422
    fields = record_state(public.entry)
    try:
        workflow.save_subprocessor_change(db.session, change_set, slug, "remove", fields=fields,
                                          summary=form.summary.data, actor=current_user)
    except WorkflowError as error:
        db.session.rollback()
        form.summary.errors = [str(error)]
        return render_template("admin/remove_form.html", form=form, change_set=change_set,
                               entry=public.entry), 422
    db.session.commit()
    flash(f"The removal of {public.entry.name} is part of this change set.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


def _step(change_set_id: int, run, done: str, form_class: type[NoteForm] = NoteForm):
    """Run one workflow step from a button on the change set page; a refusal is flashed there."""
    change_set = get_change_set(change_set_id)
    form = form_class()
    if not form.validate_on_submit():
        messages = [m for errors in form.errors.values() for m in errors]
        flash("; ".join(messages) or "The form was not accepted; please try again.", "error")
        return render_change_set_with_error(change_set.id, 422)
    try:
        run(change_set, form)
    except WorkflowError as error:
        db.session.rollback()
        flash(str(error), "error")
        return render_change_set_with_error(change_set.id, 409)
    db.session.commit()
    flash(done, "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))


def render_change_set_with_error(change_set_id: int, status: int):
    """The change set page again, with the flashed reason the request was refused."""
    return change_set(change_set_id), status


@bp.post("/change-sets/<int:change_set_id>/submit")
@permission_required("draft")
def submit(change_set_id: int):
    return _step(change_set_id, lambda c, form: workflow.submit(db.session, c, actor=current_user),
                 "Submitted for review.")


@bp.post("/change-sets/<int:change_set_id>/approve")
@permission_required("approve")
def approve(change_set_id: int):
    return _step(change_set_id, lambda c, form: workflow.approve(db.session, c, actor=current_user),
                 "Approved. It can now be scheduled.")


@bp.post("/change-sets/<int:change_set_id>/return")
@permission_required("draft")
def return_to_draft(change_set_id: int):
    return _step(change_set_id,
                 lambda c, form: workflow.return_to_draft(db.session, c, actor=current_user,
                                                          note=form.note.data or ""),
                 "Returned to draft.")


@bp.post("/change-sets/<int:change_set_id>/withdraw")
@permission_required("draft")
def withdraw(change_set_id: int):
    def run(change_set: ChangeSet, form: WithdrawForm) -> None:
        if change_set.published_at is not None:
            if not can(current_user.role, "approve"):
                raise WorkflowError("Only an approver can withdraw a change set that has been announced.")
            if not form.confirm.data:
                raise WorkflowError("Tick the confirmation: customers who were told of this change are "
                                    "told of its withdrawal, and the feeds and change log say so.")
        workflow.withdraw(db.session, change_set, actor=current_user, note=form.note.data or "")

    return _step(change_set_id, run, "Withdrawn.", WithdrawForm)


@bp.post("/change-sets/<int:change_set_id>/discard")
@permission_required("draft")
def discard(change_set_id: int):
    version_id = params.row_id(request.form.get("version_id"))
    record_id = params.row_id(request.form.get("record_id"))
    return _step(change_set_id,
                 lambda c, form: workflow.discard_item(db.session, c, version_id=version_id,
                                                       record_id=record_id, actor=current_user),
                 "Item taken out of the change set.")


@bp.post("/change-sets/<int:change_set_id>/comments")
@permission_required("draft")
def add_comment(change_set_id: int):
    change_set = get_change_set(change_set_id)
    form = CommentForm()
    if not form.validate_on_submit():
        flash("Comment not saved: " + "; ".join(m for e in form.errors.values() for m in e), "error")
        return render_change_set_with_error(change_set.id, 422)
    try:
        workflow.comment(db.session, change_set, body=form.body.data, actor=current_user)
    except WorkflowError as error:
        db.session.rollback()
        flash(str(error), "error")
        return render_change_set_with_error(change_set.id, 422)
    db.session.commit()
    return redirect(url_for("admin.change_set", change_set_id=change_set.id) + "#comments")


@dataclass(frozen=True)
class SchedulePreview:
    """What scheduling now would send: the recipients, one of their mails exactly, and the feed entry."""

    recipients: int
    suppressed: int
    sample: str  # the address the mail below is rendered for
    is_sample_real: bool  # False: nobody would be mailed, so a made-up address stands in
    subject: str
    text: str
    html: str
    feed_title: str
    feed_html: str


SAMPLE_ADDRESS = "customer@example.com"


def schedule_preview(change_set: ChangeSet, effective_at: datetime, now: datetime) -> SchedulePreview | None:
    """Schedule the change set inside a savepoint that is always rolled back, and keep what the notice
    and the feed would say: the real publish, notice and rendering code, so the preview cannot drift from
    what is sent. Nothing of it is stored. None when the change set cannot be scheduled as it stands."""
    from registry.notify import messages
    from registry.notify.senders import personalize
    from registry.web.feeds import _entry_html, one_line

    if change_set.status != ChangeStatus.APPROVED:
        return None
    session = db.session
    nested = session.begin_nested()
    try:
        publishing.apply_materiality(session, change_set)
        publishing.publish(session, change_set, published_at=now, effective_at=max(effective_at, now),
                           notice_completed_at=None, actor="schedule preview", now=now)
        notice = notices.start_notice(session, change_set, now=now)  # writes its first chunk only
        of_notice = Delivery.notice_id == notice.id
        recipients, suppressed = notices.audience(session, change_set)
        first = session.scalar(select(Delivery).where(of_notice, Delivery.status != "suppressed")
                               .order_by(Delivery.id).limit(1))
        batch = messages.notice_batch_message(session, notice)
        row = ((first.id, first.email, first.subscriber_id, first.topic_id) if first
               else (0, SAMPLE_ADDRESS, None, None))
        values = messages.recipients([row])[0].substitutions
        preview = SchedulePreview(
            recipients=recipients - suppressed, suppressed=suppressed,
            sample=row[1], is_sample_real=first is not None, subject=personalize(batch.subject, values),
            text=personalize(batch.text, values), html=personalize(batch.html, values),
            feed_title=one_line(change_set.title),
            feed_html=_entry_html(change_set, ZoneInfo(legal_zone()), None))
    except (publishing.PublishError, ValueError):
        preview = None
    finally:
        nested.rollback()
    session.expire_all()
    return preview


def _schedule_context(change_set: ChangeSet, form: ScheduleForm, outlook: workflow.Outlook,
                      preview: SchedulePreview | None = None) -> dict:
    earliest = outlook.earliest.at
    return dict(form=form, change_set=change_set, earliest=earliest, outlook=outlook, preview=preview,
                earliest_utc=earliest.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                actions=actions_for(change_set, current_user), zone=legal_zone())


def _offered(outlook: workflow.Outlook) -> datetime:
    """The date the form offers: the earliest allowed, after every older pending change."""
    return ordering.suggested_date(round_up_to_minute(outlook.earliest.at),
                                   [p.change_set.effective_at for p in outlook.pending], legal_zone())


@bp.get("/change-sets/<int:change_set_id>/schedule")
@permission_required("approve")
def schedule(change_set_id: int):
    change_set = get_change_set(change_set_id)
    now = now_utc()
    outlook = workflow.outlook(db.session, change_set, now)
    form = ScheduleForm()
    offered = _offered(outlook)
    local = offered.astimezone(ZoneInfo(legal_zone()))
    form.effective_date.data, form.effective_time.data = local.date(), local.time().replace(tzinfo=None)
    form.supersede_ids.data = ",".join(str(p.change_set.id) for p in outlook.pending)
    preview = schedule_preview(change_set, offered, now)
    return render_template("admin/schedule.html", **_schedule_context(change_set, form, outlook, preview))


@bp.get("/change-sets/<int:change_set_id>/schedule/preview.html")
@permission_required("approve")
def schedule_preview_html(change_set_id: int):
    """The HTML part of the notice mail the schedule page previews, for its sandboxed frame."""
    from registry.web.notices import framed

    change_set = get_change_set(change_set_id)
    now = now_utc()
    preview = schedule_preview(change_set, _offered(workflow.outlook(db.session, change_set, now)), now)
    if preview is None:
        abort(409, "Only an approved change set can be previewed.")
    return framed(preview.html)


@bp.post("/change-sets/<int:change_set_id>/schedule")
@permission_required("approve")
def save_schedule(change_set_id: int):
    change_set = get_change_set(change_set_id)
    now = now_utc()
    outlook = workflow.outlook(db.session, change_set, now)
    form = ScheduleForm()
    context = _schedule_context(change_set, form, outlook)

    def refused():
        """The form again with its errors, and the preview of what scheduling at the offered date sends."""
        return invalid("admin/schedule.html", **context | {
            "preview": schedule_preview(change_set, _offered(outlook), now)})

    if not form.validate_on_submit():
        return refused()
    if bool(form.new_customers_date.data) != bool(form.new_customers_time.data):
        form.new_customers_date.errors = ["Give both a date and a time for new customers, or neither."]
        return refused()
    effective_at = legal_moment(form.effective_date.data, form.effective_time.data)
    new_customers_at = (legal_moment(form.new_customers_date.data, form.new_customers_time.data)
                        if form.new_customers_date.data else None)
    try:
        workflow.schedule(db.session, change_set, effective_at=effective_at,
                          effective_new_customers_at=new_customers_at, actor=current_user,
                          legal_timezone=legal_zone(), supersede=form.superseded(), now=now)
    except WorkflowError as error:
        db.session.rollback()
        fields = {"effective_new_customers_at": form.new_customers_date, "supersede": form.supersede}
        fields.get(error.field, form.effective_date).errors = [str(error)]
        return refused()
    db.session.commit()
    flash(f"Scheduled: the notice has started. Effective "
          f"{workflow.describe_moment(effective_at, legal_zone())}.", "success")
    return redirect(url_for("admin.change_set", change_set_id=change_set.id))
