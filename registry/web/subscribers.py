"""Staff: search subscribers, their deliveries, topics, and the CSV import of customer contacts."""

from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge

from registry.extensions import db
from registry.models import Delivery, Notice, Subscriber, Subscription, Topic
from registry.services import audit, contacts, subscriptions
from registry.services.contacts import ContactsFileError
from registry.services.subscriptions import SubscriptionError
from registry.web import params
from registry.web.access import permission_required

bp = Blueprint("subscribers", __name__, url_prefix="/admin/subscribers")

PER_PAGE = 50
STATUSES = ("pending", "confirmed", "deleted")
TOO_LARGE = "The file is larger than 5 MB. Split the contacts into smaller files and import each."


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    return render_template("subscribers/import.html", report=None, error=TOO_LARGE), 413


@bp.get("/")
@permission_required("subscribers")
def index():
    query = params.text("q", max_length=320).lower()
    status = params.choice("status", STATUSES)
    page = params.positive_int("page", 1)
    where = []
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Subscriber.email.like(f"%{escaped}%", escape="\\"))
    if status:
        where.append(Subscriber.status == status)
    total = db.session.scalar(select(func.count()).select_from(Subscriber).where(*where))
    rows = db.session.scalars(select(Subscriber).where(*where).order_by(Subscriber.email)
                              .limit(PER_PAGE).offset((page - 1) * PER_PAGE))
    counts = dict(db.session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    return render_template("subscribers/index.html", subscribers=list(rows), total=total, page=page,
                           pages=max(1, -(-total // PER_PAGE)), query=query, status=status,
                           statuses=STATUSES, counts=counts)


@bp.get("/told")
@permission_required("subscribers")
def told():
    """Was this address told? Found under the address, or under its keyed hash once it was erased."""
    raw = params.text("email", max_length=320)
    notices, error = [], None
    if raw:
        try:
            notices = subscriptions.notices_to_address(db.session, raw, limit=500)
        except subscriptions.SubscriptionError as refused:
            error = refused.message
    return render_template("subscribers/told.html", email=raw, notices=notices, error=error,
                           asked=bool(raw) and error is None), 400 if error else 200


@bp.get("/<int:subscriber_id>")
@permission_required("subscribers")
def show(subscriber_id: int):
    subscriber = db.get_or_404(Subscriber, subscriber_id,
                               description="There is no subscriber with this number.")
    deliveries = db.session.execute(
        select(Delivery, Notice).join(Notice, Notice.id == Delivery.notice_id)
        .where((Delivery.subscriber_id == subscriber.id) | (Delivery.email == subscriber.email))
        .order_by(Notice.created_at.desc(), Delivery.id.desc()).limit(500)
    ).all()
    topics = {t.id: t for t in subscriptions.all_topics(db.session)}
    return render_template("subscribers/show.html", subscriber=subscriber, deliveries=deliveries,
                           choices=subscriptions.choices_of(db.session, subscriber), topics=topics)


@bp.get("/import")
@permission_required("import_contacts")
def import_contacts():
    return render_template("subscribers/import.html", report=None, error=None)


@bp.post("/import")
@permission_required("import_contacts")
def upload_contacts():
    # Refuse a large upload before reading it; without a Content-Length the parser enforces it.
    request.max_content_length = contacts.MAX_BYTES + 64 * 1024
    if (request.content_length or 0) > request.max_content_length:
        return too_large(None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("subscribers/import.html", report=None,
                               error="Choose a CSV file to import."), 400
    data = upload.read(contacts.MAX_BYTES + 1)
    try:
        report = contacts.import_contacts(db.session, data)
    except ContactsFileError as error:
        db.session.rollback()
        status = 413 if len(data) > contacts.MAX_BYTES else 400
        return render_template("subscribers/import.html", report=None, error=str(error)), status
    audit.record(db.session, actor=current_user.email, actor_id=current_user.id,
                 action="subscribers.import", object_type="contacts_file", object_id=report.sha256[:16],
                 after={**report.summary(), "filename": subscriptions.clean_text(upload.filename, 200)})
    db.session.commit()
    return render_template("subscribers/import.html", report=report, error=None)


@bp.get("/topics")
@permission_required("view")
def topics():
    counts = dict(db.session.execute(
        select(Subscription.topic_id, func.count())
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.is_subscribed.is_(True), Subscriber.status == "confirmed")
        .group_by(Subscription.topic_id)).all())
    return render_template("subscribers/topics.html", topics=subscriptions.all_topics(db.session),
                           counts=counts)


def _topic_form() -> dict:
    form = request.form
    position = form.get("position", "").strip()
    return {"key": form.get("key", ""), "name": form.get("name", ""),
            "description": form.get("description", ""), "is_default_on": form.get("is_default_on") == "on",
            "position": position}


def _position(raw: str) -> int | None:
    if not raw:
        return None
    # ASCII digits only: str.isdigit() also takes "²" and "٣", and "--1" passed the old lstrip check.
    if not re.fullmatch(r"-?[0-9]{1,6}", raw):
        raise SubscriptionError("position", "The position is a whole number, like 3.")
    return int(raw)


@bp.get("/topics/new")
@permission_required("manage_policies")
def new_topic():
    return render_template("subscribers/topic_form.html", topic=None, form={"is_default_on": True}, errors={})


@bp.post("/topics/new")
@permission_required("manage_policies")
def create_topic():
    form = _topic_form()
    try:
        topic = subscriptions.add_topic(db.session, form["key"], form["name"], form["description"],
                                        form["is_default_on"], position=_position(form["position"]))
    except SubscriptionError as error:
        db.session.rollback()
        return render_template("subscribers/topic_form.html", topic=None, form=form,
                               errors={error.field: error.message}), 422
    audit.record(db.session, actor=current_user.email, actor_id=current_user.id, action="topic.create",
                 object_type="topic", object_id=topic.id,
                 after={"key": topic.key, "name": topic.name, "is_default_on": topic.is_default_on})
    db.session.commit()
    flash(f"Topic {topic.name} created; every existing subscriber got their choice for it.", "success")
    return redirect(url_for(".topics"), 303)


def _topic_or_404(topic_id: int) -> Topic:
    return db.get_or_404(Topic, topic_id, description="There is no topic with this number.")


@bp.get("/topics/<int:topic_id>/edit")
@permission_required("manage_policies")
def edit_topic(topic_id: int):
    topic = _topic_or_404(topic_id)
    form = {"key": topic.key, "name": topic.name, "description": topic.description,
            "is_default_on": topic.is_default_on, "position": str(topic.position)}
    return render_template("subscribers/topic_form.html", topic=topic, form=form, errors={})


@bp.post("/topics/<int:topic_id>/edit")
@permission_required("manage_policies")
def update_topic(topic_id: int):
    topic = _topic_or_404(topic_id)
    form = _topic_form()
    before = {"name": topic.name, "description": topic.description,
              "is_default_on": topic.is_default_on, "position": topic.position}
    try:
        position = _position(form["position"])
        subscriptions.update_topic(db.session, topic, name=form["name"], description=form["description"],
                                   is_default_on=form["is_default_on"],
                                   position=topic.position if position is None else position)
    except SubscriptionError as error:
        db.session.rollback()
        return render_template("subscribers/topic_form.html", topic=topic, form=form,
                               errors={error.field: error.message}), 422
    audit.record(db.session, actor=current_user.email, actor_id=current_user.id, action="topic.edit",
                 object_type="topic", object_id=topic.id, before=before,
                 after={"name": topic.name, "description": topic.description,
                        "is_default_on": topic.is_default_on, "position": topic.position})
    db.session.commit()
    flash(f"Topic {topic.name} saved.", "success")
    return redirect(url_for(".topics"), 303)
