"""Customers' webhook endpoints, from their subscription preferences page (the signed link is the
credential): add one, see its delivery log, resend, rotate its secret, disable and enable it.

In development with REGISTRY_ENDPOINTS_ALLOW_PRIVATE, a receiver that verifies signatures is served
at /subscriptions/dev-receiver, so that the demo's working endpoint has somewhere to go."""

from __future__ import annotations

import json

from flask import Blueprint, Flask, abort, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectMultipleField, StringField
from wtforms.validators import ValidationError

from registry.domain import signing
from registry.domain.clock import now_utc
from registry.extensions import csrf, db
from registry.models import Endpoint, Subscriber
from registry.services import endpoints, subscriptions
from registry.services.endpoints import EndpointError, Owner
from registry.web.forms import plain_text

bp = Blueprint("endpoints", __name__, url_prefix="/subscriptions/preferences/<token>/endpoints")


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL (https://…)", validators=[plain_text])
    topics = SelectMultipleField("Topics it follows", choices=[], validate_choice=False)

    def validate_url(self, field) -> None:
        try:
            field.data = endpoints.check_url(field.data or "")
        except EndpointError as error:
            raise ValidationError(error.message) from None

    def validate_topics(self, field) -> None:
        try:
            field.data = endpoints.check_topics(db.session, field.data or [])
        except EndpointError as error:
            raise ValidationError(error.message) from None


class ActionForm(FlaskForm):
    """The buttons (resend, rotate, disable, enable): a CSRF token and nothing else."""


@bp.after_request
def private(response):
    # The preferences token is in every URL and a secret may be on the page.
    response.headers["Cache-Control"] = "no-store"
    return response


def _subscriber(token: str) -> Subscriber:
    check = subscriptions.check_link(db.session, subscriptions.read_preferences_token(token), now_utc())
    if check.state != "valid" or check.subscriber.status == "deleted":
        abort(404, description="This preferences link does not work any more. Use the link at the bottom "
                               "of the latest notice we sent you.")
    return check.subscriber


def _endpoint(subscriber: Subscriber, endpoint_id: int) -> Endpoint:
    endpoint = endpoints.get_owned(db.session, Owner(subscriber=subscriber), endpoint_id)
    if endpoint is None:
        abort(404, description="There is no such endpoint.")
    return endpoint


def _index_page(subscriber: Subscriber, token: str, form: EndpointForm, status: int = 200):
    form.topics.choices = [(t.key, t.name) for t in subscriptions.all_topics(db.session)]
    listed = endpoints.owned(db.session, Owner(subscriber=subscriber))
    return render_template("endpoints/index.html", token=token, form=form, endpoints=listed,
                           latest=endpoints.latest_deliveries(db.session, listed),
                           subscriber=subscriber), status


@bp.get("/")
def index(token: str):
    subscriber = _subscriber(token)
    return _index_page(subscriber, token, EndpointForm())


@bp.post("/")
def create(token: str):
    subscriber = _subscriber(token)
    form = EndpointForm()
    if not form.validate_on_submit():
        return _index_page(subscriber, token, form, 422)
    try:
        endpoint, secret = endpoints.create(db.session, Owner(subscriber=subscriber), url=form.url.data,
                                            topic_keys=form.topics.data, actor=f"subscriber:{subscriber.id}")
    except EndpointError as error:
        db.session.rollback()
        getattr(form, error.field).errors = [error.message]
        return _index_page(subscriber, token, form, 422)
    db.session.commit()
    # The secret is shown on this response only; the page it links to never shows it again.
    return _show_page(endpoint, token, secret=secret, status=201)


def _show_page(endpoint: Endpoint, token: str, *, secret: str | None = None, status: int = 200):
    latest = endpoints.deliveries(db.session, endpoint, limit=1)
    return render_template("endpoints/show.html", token=token, endpoint=endpoint, secret=secret,
                           deliveries=endpoints.deliveries(db.session, endpoint),
                           attempts=endpoints.attempts(db.session, endpoint), form=ActionForm(),
                           latest=latest[0] if latest else None, now=now_utc()), status


@bp.get("/<int:endpoint_id>")
def show(token: str, endpoint_id: int):
    return _show_page(_endpoint(_subscriber(token), endpoint_id), token)


@bp.get("/<int:endpoint_id>/deliveries/<int:delivery_id>.json")
def delivery_status(token: str, endpoint_id: int, delivery_id: int):
    endpoint = _endpoint(_subscriber(token), endpoint_id)
    delivery = endpoints.get_delivery(db.session, endpoint, delivery_id)
    if delivery is None:
        abort(404, description="There is no such delivery.")
    return jsonify(endpoints.delivery_status(db.session, delivery))


def _action(token: str, endpoint_id: int):
    subscriber = _subscriber(token)
    endpoint = _endpoint(subscriber, endpoint_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    return subscriber, endpoint


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/resend")
def resend(token: str, endpoint_id: int, delivery_id: int):
    subscriber, endpoint = _action(token, endpoint_id)
    if endpoints.resend(db.session, endpoint, delivery_id, actor=f"subscriber:{subscriber.id}") is None:
        abort(404, description="There is no such delivery, or it is being sent right now.")
    db.session.commit()
    return redirect(url_for(".show", token=token, endpoint_id=endpoint.id), 303)


@bp.post("/<int:endpoint_id>/rotate")
def rotate(token: str, endpoint_id: int):
    subscriber, endpoint = _action(token, endpoint_id)
    secret = endpoints.rotate(db.session, endpoint, actor=f"subscriber:{subscriber.id}")
    db.session.commit()
    return _show_page(endpoint, token, secret=secret)


@bp.post("/<int:endpoint_id>/disable")
def disable(token: str, endpoint_id: int):
    subscriber, endpoint = _action(token, endpoint_id)
    endpoints.disable(db.session, endpoint.id, reason="disabled by its owner",
                      actor=f"subscriber:{subscriber.id}",
                      now=now_utc(), tell_owner=False)
    db.session.commit()
    return redirect(url_for(".show", token=token, endpoint_id=endpoint.id), 303)


@bp.post("/<int:endpoint_id>/enable")
def enable(token: str, endpoint_id: int):
    subscriber, endpoint = _action(token, endpoint_id)
    endpoints.enable(db.session, endpoint, actor=f"subscriber:{subscriber.id}")
    db.session.commit()
    return redirect(url_for(".show", token=token, endpoint_id=endpoint.id), 303)


receiver = Blueprint("endpoint_receiver", __name__)


@receiver.post("/subscriptions/dev-receiver")
@csrf.exempt
def dev_receiver():
    """Development only: 204 when the signature verifies with an endpoint pointing here, else 401."""
    body = request.get_data()
    try:
        timestamp = int(request.headers.get("webhook-timestamp", ""))
        json.loads(body)
    except ValueError:
        return "", 400
    for endpoint in db.session.scalars(select(Endpoint).where(Endpoint.url == request.url)):
        for secret in endpoints.secrets_for(endpoint, now_utc()):
            try:
                signing.verify(secret, request.headers.get("webhook-id", ""), timestamp, body,
                               request.headers.get("webhook-signature", ""), now=int(now_utc().timestamp()))
            except signing.SignatureError:
                continue
            return "", 204
    return "", 401


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    settings = app.config["REGISTRY"]
    if settings.env == "development" and settings.endpoints_allow_private:
        app.register_blueprint(receiver)
