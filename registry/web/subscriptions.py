"""Public subscribing: double opt-in, preferences, one-click unsubscribe."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from registry.domain.clock import now_utc
from registry.extensions import csrf, db, limiter
from registry.models import Subscriber, Topic
from registry.services import subscriptions
from registry.services.subscriptions import SubscriptionError

bp = Blueprint("subscriptions", __name__, url_prefix="/subscriptions")

FORM_LIMIT = "10 per hour"


def _accepted(response) -> bool:
    """Only a form the service took counts towards the limit: a typo corrected is not another request."""
    return response.status_code == 200


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
NEW_LINK = ("Get a new link", "Enter your address and we will email you a link to your subscription.")
STALE_LINKS = {
    "expired": ("This link has expired",
                "Links in our emails work for 400 days. Enter your address and we will email you a new "
                "link to your subscription."),
    "stale": ("This link belongs to an earlier subscription",
              "The subscription this link was sent for was deleted, and the address has subscribed again "
              "since. Enter your address and we will email you a link to the current subscription."),
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
@limiter.shared_limit(FORM_LIMIT, scope="subscription-forms", error_message=TOO_MANY,
                      deduct_when=_accepted)
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
    # The same page and status whether the address is new, pending, confirmed, suppressed or limited.
    return render_template("subscriptions/sent.html")


@bp.post("/link")
@limiter.shared_limit(FORM_LIMIT, scope="subscription-forms", error_message=TOO_MANY,
                      deduct_when=_accepted)
def request_link():
    """The form on an expired or stale link's page: a fresh preferences link, by mail only."""
    email = request.form.get("email", "")
    try:
        subscriptions.request_link(db.session, email=email, now=now_utc())
    except SubscriptionError as error:
        db.session.rollback()
        return _new_link_page(NEW_LINK, email=email[:320], errors={error.field: error.message}, status=422)
    db.session.commit()
    return render_template("subscriptions/sent.html")


def _link_problem(state: str):
    status, title, explanation = LINK_PROBLEMS[state]
    return render_template("subscriptions/link_problem.html", title=title,
                           explanation=explanation), status


def _new_link_page(problem: tuple[str, str], *, email: str = "", errors=None, status: int = 410):
    title, explanation = problem
    return render_template("subscriptions/new_link.html", title=title, explanation=explanation, email=email,
                           errors=errors or {}), status


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
    subscriber = check.token.subscriber
    preferences = subscriptions.preferences_token(subscriber.id, subscriber.generation)
    db.session.commit()
    return redirect(url_for(".preferences", token=preferences, confirmed=1), 303)


def _checked(link: subscriptions.Link | None, kind: str) -> subscriptions.LinkCheck:
    check = subscriptions.check_link(db.session, link, now_utc())
    if check.state == "unknown":
        abort(404, description=f"This {kind} link does not work. Use the link at the bottom of the latest "
                               "notice we sent you.")
    return check


def _refused(check: subscriptions.LinkCheck):
    """An expired link, or one of an earlier subscription: nothing changes; a fresh link is offered."""
    if check.state == "stale" and check.subscriber.status == "deleted":
        return render_template("subscriptions/deleted.html", subscriber=check.subscriber), 410
    return _new_link_page(STALE_LINKS[check.state])


def _preferences_page(subscriber: Subscriber, token: str, *, errors=None, status=200):
    if subscriber.status == "deleted":
        return render_template("subscriptions/deleted.html", subscriber=subscriber), 410
    return render_template(
        "subscriptions/preferences.html", subscriber=subscriber, token=token,
        choices=subscriptions.choices_of(db.session, subscriber),
        history=subscriptions.history(db.session, subscriber), errors=errors or {},
        saved=request.args.get("saved") == "1", confirmed=request.args.get("confirmed") == "1",
    ), status


def _preferences_check(token: str) -> subscriptions.LinkCheck:
    return _checked(subscriptions.read_preferences_token(token), "preferences")


@bp.get("/preferences/<token>")
def preferences(token: str):
    check = _preferences_check(token)
    if check.state != "valid":
        return _refused(check)
    return _preferences_page(check.subscriber, token)


@bp.get("/preferences/<token>/data.json")
def personal_data(token: str):
    """The subscriber's own data, as a download (the right of access, without asking anyone)."""
    check = _preferences_check(token)
    if check.state != "valid":
        return _refused(check)
    response = jsonify(subscriptions.personal_data(db.session, check.subscriber))
    response.headers["Content-Disposition"] = 'attachment; filename="my-subscription.json"'
    return response


@bp.post("/preferences/<token>")
def save_preferences(token: str):
    check = _preferences_check(token)
    if check.state != "valid":
        return _refused(check)
    subscriber = check.subscriber
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
    check = _preferences_check(token)
    if check.state != "valid":
        return _refused(check)
    subscriber = check.subscriber
    address = subscriber.email  # erased by the deletion: shown once more, to say it is done
    subscriptions.delete_subscription(db.session, subscriber, now_utc())
    db.session.commit()
    return render_template("subscriptions/deleted.html", subscriber=subscriber, address=address)


def _unsubscribe_check(token: str) -> tuple[subscriptions.LinkCheck, Topic]:
    link = subscriptions.read_unsubscribe_token(token)
    check = _checked(link, "unsubscribe")
    topic = db.session.get(Topic, link.topic_id)
    if topic is None:
        abort(404, description="There is no subscription for this link any more.")
    return check, topic


def _preferences_token(subscriber: Subscriber) -> str:
    return subscriptions.preferences_token(subscriber.id, subscriber.generation)


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str):
    check, topic = _unsubscribe_check(token)
    if check.state != "valid":
        return _refused(check)
    subscriber = check.subscriber
    return render_template("subscriptions/unsubscribe.html", token=token, subscriber=subscriber,
                           topic=topic, preferences_token=_preferences_token(subscriber))


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: mail clients POST here without cookies; the signed token is the credential
def unsubscribe(token: str):
    check, topic = _unsubscribe_check(token)
    subscriber = check.subscriber
    if check.state == "stale" and subscriber.status == "deleted":
        # Already done (a mail client repeating its POST after the subscription ended): say so again.
        return render_template("subscriptions/unsubscribed.html", subscriber=subscriber)
    if check.state != "valid":
        return _refused(check)
    address = subscriber.email  # erased if this ends the subscription
    subscriptions.one_click_unsubscribe(db.session, subscriber, topic, now_utc())
    db.session.commit()
    return render_template("subscriptions/unsubscribed.html", subscriber=subscriber, address=address,
                           preferences_token=_preferences_token(subscriber))
