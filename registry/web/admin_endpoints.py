"""Staff: an organisation's webhook endpoints (add, delivery log, resend, rotate, disable, enable)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Endpoint, Organisation
from registry.services import endpoints, subscriptions
from registry.services.endpoints import EndpointError, Owner
from registry.web.access import permission_required
from registry.web.endpoints import ActionForm, EndpointForm

bp = Blueprint("admin_endpoints", __name__, url_prefix="/admin/organisations/<int:organisation_id>/endpoints")


def _organisation(organisation_id: int) -> Organisation:
    return db.get_or_404(Organisation, organisation_id, description="There is no such organisation.")


def _endpoint(organisation: Organisation, endpoint_id: int) -> Endpoint:
    endpoint = endpoints.get_owned(db.session, Owner(organisation=organisation), endpoint_id)
    if endpoint is None:
        abort(404, description="There is no such endpoint.")
    return endpoint


def _index_page(organisation: Organisation, form: EndpointForm, status: int = 200):
    form.topics.choices = [(t.key, t.name) for t in subscriptions.all_topics(db.session)]
    listed = endpoints.owned(db.session, Owner(organisation=organisation))
    return render_template("admin/endpoints/index.html", organisation=organisation, form=form,
                           endpoints=listed, latest=endpoints.latest_deliveries(db.session, listed)), status


@bp.get("/")
@permission_required("view")
def index(organisation_id: int):
    return _index_page(_organisation(organisation_id), EndpointForm())


@bp.post("/")
@permission_required("manage_organisations")
def create(organisation_id: int):
    organisation = _organisation(organisation_id)
    form = EndpointForm()
    if not form.validate_on_submit():
        return _index_page(organisation, form, 422)
    try:
        endpoint, secret = endpoints.create(db.session, Owner(organisation=organisation), url=form.url.data,
                                            topic_keys=form.topics.data, actor=current_user.email)
    except EndpointError as error:
        db.session.rollback()
        getattr(form, error.field).errors = [error.message]
        return _index_page(organisation, form, 422)
    db.session.commit()
    return _show_page(organisation, endpoint, secret=secret, status=201)


def _show_page(organisation: Organisation, endpoint: Endpoint, *, secret: str | None = None,
               status: int = 200):
    latest = endpoints.deliveries(db.session, endpoint, limit=1)
    return render_template("admin/endpoints/show.html", organisation=organisation, endpoint=endpoint,
                           secret=secret, deliveries=endpoints.deliveries(db.session, endpoint),
                           attempts=endpoints.attempts(db.session, endpoint), form=ActionForm(),
                           latest=latest[0] if latest else None, now=now_utc()), status


@bp.get("/<int:endpoint_id>")
@permission_required("view")
def show(organisation_id: int, endpoint_id: int):
    organisation = _organisation(organisation_id)
    return _show_page(organisation, _endpoint(organisation, endpoint_id))


def _action(organisation_id: int, endpoint_id: int) -> tuple[Organisation, Endpoint]:
    organisation = _organisation(organisation_id)
    endpoint = _endpoint(organisation, endpoint_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    return organisation, endpoint


def _back(organisation: Organisation, endpoint: Endpoint):
    return redirect(url_for(".show", organisation_id=organisation.id, endpoint_id=endpoint.id), 303)


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
@permission_required("manage_organisations")
def resend(organisation_id: int, endpoint_id: int, delivery_id: int):
    organisation, endpoint = _action(organisation_id, endpoint_id)
    if endpoints.resend(db.session, endpoint, delivery_id, actor=current_user.email) is None:
        abort(404, description="There is no such delivery, or it is being sent right now.")
    db.session.commit()
    flash("The event is queued again (same webhook-id).", "success")
    return _back(organisation, endpoint)


@bp.post("/<int:endpoint_id>/rotate")
@permission_required("manage_organisations")
def rotate(organisation_id: int, endpoint_id: int):
    organisation, endpoint = _action(organisation_id, endpoint_id)
    secret = endpoints.rotate(db.session, endpoint, actor=current_user.email)
    db.session.commit()
    return _show_page(organisation, endpoint, secret=secret)


@bp.post("/<int:endpoint_id>/disable")
@permission_required("manage_organisations")
def disable(organisation_id: int, endpoint_id: int):
    organisation, endpoint = _action(organisation_id, endpoint_id)
    endpoints.disable(db.session, endpoint.id, reason=f"disabled by {current_user.email}",
                      actor=current_user.email, now=now_utc(), tell_owner=False)
    db.session.commit()
    return _back(organisation, endpoint)


@bp.post("/<int:endpoint_id>/enable")
@permission_required("manage_organisations")
def enable(organisation_id: int, endpoint_id: int):
    organisation, endpoint = _action(organisation_id, endpoint_id)
    endpoints.enable(db.session, endpoint, actor=current_user.email)
    db.session.commit()
    return _back(organisation, endpoint)
