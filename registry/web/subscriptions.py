"""Public subscribing: double opt-in, preferences, one-click unsubscribe."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from registry.domain.clock import now_utc
from registry.extensions import csrf, db, limiter
from registry.models import Subscriber, Topic
from registry.services import subscriptions
from registry.services.subscriptions import SubscriptionError

bp = Blueprint("subscriptions", __name__, url_prefix="/subscriptions")

FORM_LIMIT = "10 per hour"
TOO_MANY = ("Too many subscription requests have come from your network in the last hour. "
            "Please wait an hour and try again.")
LINK_PROBLEMS = {
    "unknown": (404, "This link does not work",
                "The link may have been copied incompletely. Subscribe again to get a new one."),
    "expired": (410, "This link has expired",
                "Confirmation links work for 72 hours. Subscribe again and we will send a new one."),
    "used": (410, "This link has already been used",
             "Your address is confirmed (or was later unsubscribed). To change what you receive, use "
             "the preferences link at the bottom of any notice; to start again, subscribe again."),
}


@bp.after_request
def private(response):
    # Links carry personal tokens and pages show an address: never store them in a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _form_values() -> tuple[str, list[str]]:
    return request.form.get("email", ""), request.form.getlist("topics")


@bp.get("/")
def index():
    return render_template("subscriptions/index.html", topics=subscriptions.all_topics(db.session),
                           email="", chosen=None, errors={})


@bp.post("/")
@limiter.limit(FORM_LIMIT, error_message=TOO_MANY)
def subscribe():
    email, topic_keys = _form_values()
    try:
        subscriptions.subscribe(db.session, email=email, topic_keys=topic_keys, now=now_utc())
    except SubscriptionError as error:
        db.session.rollback()
        topics = subscriptions.all_topics(db.session)
        return render_template("subscriptions/index.html", topics=topics, email=email[:320],
                               chosen=set(topic_keys), errors={error.field: error.message}), 422
    db.session.commit()
    # The same page and status whether the address is new, pending, confirmed or rate-limited.
    return render_template("subscriptions/sent.html")


def _link_problem(state: str):
    status, title, explanation = LINK_PROBLEMS[state]
    return render_template("subscriptions/link_problem.html", title=title,
                           explanation=explanation), status


@bp.get("/confirm/<token>")
def confirm_page(token: str):
    check = subscriptions.check_confirmation(db.session, token, now_utc())
    if check.state != "valid":
        return _link_problem(check.state)
    return render_template("subscriptions/confirm.html", token=token,
                           email=check.token.subscriber.email)


@bp.post("/confirm/<token>")
def confirm(token: str):
    check = subscriptions.confirm(db.session, token, now_utc())
    if check.state != "valid":
        db.session.rollback()
        return _link_problem(check.state)
    subscriber_id = check.token.subscriber_id
    db.session.commit()
    return redirect(url_for(".preferences", token=subscriptions.preferences_token(subscriber_id),
                            confirmed=1), 303)


def _subscriber(token: str) -> Subscriber:
    subscriber_id = subscriptions.read_preferences_token(token)
    subscriber = db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    if subscriber is None:
        abort(404, description="This preferences link does not work. Use the link at the bottom of "
                               "the latest notice we sent you.")
    return subscriber


def _preferences_page(subscriber: Subscriber, token: str, *, errors=None, status=200):
    if subscriber.status == "deleted":
        return render_template("subscriptions/deleted.html", subscriber=subscriber), 410
    return render_template(
        "subscriptions/preferences.html", subscriber=subscriber, token=token,
        choices=subscriptions.choices_of(db.session, subscriber),
        history=subscriptions.history(db.session, subscriber), errors=errors or {},
        saved=request.args.get("saved") == "1", confirmed=request.args.get("confirmed") == "1",
    ), status


@bp.get("/preferences/<token>")
def preferences(token: str):
    return _preferences_page(_subscriber(token), token)


@bp.post("/preferences/<token>")
def save_preferences(token: str):
    subscriber = _subscriber(token)
    if subscriber.status == "deleted":
        return _preferences_page(subscriber, token)
    try:
        subscriptions.update_topics(db.session, subscriber, request.form.getlist("topics"), now_utc())
    except SubscriptionError as error:
        db.session.rollback()
        return _preferences_page(subscriber, token, errors={error.field: error.message}, status=422)
    db.session.commit()
    return redirect(url_for(".preferences", token=token, saved=1), 303)


@bp.post("/preferences/<token>/delete")
def delete(token: str):
    subscriber = _subscriber(token)
    subscriptions.delete_subscription(db.session, subscriber, now_utc())
    db.session.commit()
    return render_template("subscriptions/deleted.html", subscriber=subscriber, just_now=True)


def _unsubscribe_target(token: str) -> tuple[int, int]:
    ids = subscriptions.read_unsubscribe_token(token)
    if ids is None:
        abort(404, description="This unsubscribe link does not work. Use the link at the bottom of "
                               "the latest notice we sent you.")
    return ids


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    subscriber_id, topic_id = _unsubscribe_target(token)
    subscriber, topic = db.session.get(Subscriber, subscriber_id), db.session.get(Topic, topic_id)
    if subscriber is None or topic is None:
        abort(404, description="There is no subscription for this link any more.")
    return render_template("subscriptions/unsubscribe.html", token=token, subscriber=subscriber,
                           topic=topic, preferences_token=subscriptions.preferences_token(subscriber.id))


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: mail clients POST here without cookies; the signed token is the credential
def unsubscribe(token: str):
    subscriber_id, topic_id = _unsubscribe_target(token)
    subscriber = subscriptions.one_click_unsubscribe(db.session, subscriber_id, topic_id, now_utc())
    if subscriber is None:
        abort(404, description="There is no subscription for this link any more.")
    db.session.commit()
    return render_template("subscriptions/unsubscribed.html", subscriber=subscriber,
                           preferences_token=subscriptions.preferences_token(subscriber.id))
