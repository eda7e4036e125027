"""Issue 9, item 1: every method but GET and POST, on every route, changes nothing and logs nobody in.

HEAD used to run the GET+POST views as a submission, past CSRF (which skips HEAD) and the login
throttles (which count POST): with an admin cookie and no token it created topics, set the
sub-processor notice policy to 1 day and imported a contact. The walk sends HEAD, PUT, PATCH, DELETE,
OPTIONS, TRACE and a made-up method to every rule of the URL map, with real ids, slugs and tokens and
form data that IS a valid submission for that route's POST (test_the_walk_s_submissions_are_valid
POSTs the same data and sees it change the database), as anonymous, as an admin and as an approver
with two-factor done, with and without a CSRF token; every table's rows are compared before and after.
"""

from __future__ import annotations

import io

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    ChangeSet,
    Delivery,
    Document,
    Notice,
    NoticePolicy,
    Objection,
    Organisation,
    OutgoingMail,
    Subscriber,
    Topic,
    User,
)
from registry.services import accounts, demo, endpoints, objections, subscriptions, workflow
from registry.web import VIEW_METHODS
from registry.web.admin import public_entries
from tests.conftest import csrf_token

METHODS = ("HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW")
NEVER_ROUTED = {"PUT", "PATCH", "DELETE", "TRACE", "BREW"}
# last_seen_at moves forward (at most once a minute) on any request of a signed-in user, GET and HEAD
# included, for the idle timeout: the session's own bookkeeping, not a change the request asked for.
VOLATILE = {("staff_sessions", "last_seen_at")}
ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOTP = next((e, p, t) for e, r, p, t in demo.STAFF if r == "admin")
NEW_PASSWORD = "a brand new password for the walk 2026"
CONTACTS_CSV = b"email,name,company\nwalk-contact@example.com,Walk Contact,Walk Ltd\n"
# The fields of every staff and public form, each with a value its POST accepts; a view ignores the rest.
SUBMISSION = {
    "title": "Walk change", "summary": "What changes, for readers.", "materiality": "material",
    "source": "# Walk\n\nA new version of the document.", "note": "walk note", "body": "A walk comment.",
    "slug": "walk-processor", "name": "Walk Processor", "legal_entity": "Walk Processor GmbH",
    "address": "1 Walk Street, Berlin", "contact": "privacy@walk.example", "purpose": "Hosting",
    "description": "Runs servers.", "data_categories": "Email", "countries": "DE",
    "transfer_mechanism": "Standard Contractual Clauses", "website": "https://walk.example",
    "effective_date": "2030-01-07", "effective_time": "00:00",
    "length": "1", "unit": "calendar_days", "calendars": "PL", "timezone": "Europe/Warsaw",
    "key": "walk-topic", "is_default_on": "on", "position": "9",
    "email": "walk-new@example.com", "role": "admin", "topics": "documents",
    "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "next": "/admin/",
}
# Keyed by the rule's path, not the endpoint, so that a view split into GET and POST keeps its entry.
OVERRIDES = {"/auth/login": {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}}


def staff(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


@pytest.fixture
def world(app: Flask) -> dict:
    """The demo company, a change set in each state a staff POST needs, and the tokens of links."""
    now = now_utc()
    demo.load(db.session, now)
    editor, approver, second, admin = (staff(email) for email, *_ in demo.STAFF)
    documents = list(db.session.scalars(select(Document).order_by(Document.position)))

    def change_set(document: Document, title: str) -> ChangeSet:
        created = workflow.create(db.session, title=title, summary="Walk", is_material=True, actor=editor)
        workflow.save_document_version(db.session, created, document, source_md=f"# {title}\n\nText.",
                                       summary="Walk", is_material=True, actor=editor)
        return created

    draft = change_set(documents[0], "Draft")
    in_review = change_set(documents[1], "In review")
    workflow.submit(db.session, in_review, actor=editor)
    approved = change_set(documents[2], "Approved")
    workflow.submit(db.session, approved, actor=editor)
    workflow.approve(db.session, approved, actor=second)
    topic = db.session.scalar(select(Topic).where(Topic.key == "non-material"))
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                                   .order_by(Subscriber.id))
    pending = "walk-pending@example.com"
    subscriptions.subscribe(db.session, email=pending, topic_keys=["documents"], now=now)
    confirmation = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == pending))
    tokens = {"confirm": confirmation.context["confirm_url"].rsplit("/", 1)[1],
              "set-password": accounts.issue_password_link(db.session, editor),
              "preferences": subscriptions.preferences_token(subscriber.id, subscriber.generation),
              "unsubscribe": subscriptions.unsubscribe_token(subscriber.id, topic.id, subscriber.generation)}
    walk_endpoint, _ = endpoints.create(db.session, endpoints.Owner(subscriber=subscriber),
                                        url="https://hooks.walk.example/", topic_keys=["documents"],
                                        actor="walk")
    objection = db.session.scalar(select(Objection))
    announced_notice = db.session.scalar(select(Notice.id)
                                         .where(Notice.change_set_id == objection.change_set_id))
    objections.submit_from_form(
        db.session, db.session.get(ChangeSet, objection.change_set_id), "walk-objector@example.com",
        objections.Submission(kind="approval", organisation="Walk", contact_name="Walk", role="controller",
                              items=[], grounds="", asks_alternative=False), now)
    objection_confirmation = db.session.scalar(select(OutgoingMail).where(
        OutgoingMail.to == "walk-objector@example.com")).context["confirm_url"].rsplit("/", 1)[1]
    db.session.commit()
    return {
        "editor": editor, "approver": approver, "admin": admin, "tokens": tokens,
        "document": documents[0].slug, "subprocessor": sorted(public_entries())[0],
        "draft": draft.id, "in_review": in_review.id, "approved": approved.id,
        "announced": db.session.scalar(select(Notice.change_set_id).order_by(Notice.id)),
        "draft_version": draft.document_versions[0].id,
        "values": {"user_id": editor.id, "topic_id": topic.id, "subscriber_id": subscriber.id,
                   "policy_id": db.session.scalar(select(NoticePolicy.id).where(
                       NoticePolicy.key == "subprocessors")),
                   "number": 1, "old_number": 1, "new_number": 2, "filename": "css/site.css",
                   "name": "20261201T120000Z-1-1.eml",
                   "delivery_id": db.session.scalar(select(Delivery.id).order_by(Delivery.id)),
                   "objection_id": objection.id, "endpoint_id": walk_endpoint.id,
                   "notice_token": objections.notice_token(db.session.scalar(
                       select(Delivery.id).where(Delivery.notice_id == announced_notice)
                       .order_by(Delivery.id))),
                   "confirmation": objection_confirmation,
                   "status_token": objections.status_token(objection.id),
                   "organisation_id": db.session.scalar(select(Organisation.id).order_by(Organisation.id))},
    }


def argument(rule, name: str, world: dict):
    if name in (rule.defaults or {}):  # e.g. the feeds' format, fixed by each rule
        return rule.defaults[name]
    if name == "change_set_id":
        if rule.endpoint.startswith("notices."):
            return world["announced"]
        if rule.rule.endswith(("/approve", "/return")):
            return world["in_review"]
        if rule.rule.endswith("/schedule"):
            return world["approved"]
        return world["draft"]
    if name == "slug":
        return world["subprocessor"] if "subprocessor" in rule.rule else world["document"]
    if name == "token":  # /subscriptions/confirm/<token>, /auth/set-password/<token>, ...
        return world["tokens"][rule.rule.split("/")[2]]
    assert name in world["values"], f"{rule.rule}: give the walk a real value for <{name}>"
    return world["values"][name]


def url_of(app: Flask, rule, world: dict) -> str:
    values = {name: argument(rule, name, world) for name in rule.arguments}
    with app.test_request_context():
        return rule.build(values, append_unknown=False)[1]


def submission(rule, world: dict) -> dict:
    """Form data that the POST at this rule's URL accepts (a new file object each time: it is read)."""
    return {**SUBMISSION, "change_set": str(world["draft"]), "document": world["document"],
            "version_id": str(world["draft_version"]), "code": pyotp.TOTP(ADMIN_TOTP).now(),
            "file": (io.BytesIO(CONTACTS_CSV), "contacts.csv"), **OVERRIDES.get(rule.rule, {})}


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order, as the database has it committed."""
    db.session.rollback()
    state = {}
    for table in db.metadata.sorted_tables:
        columns = [column for column in table.columns if (table.name, column.name) not in VOLATILE]
        rows = db.session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
        state[table.name] = [tuple(row) for row in rows]
    db.session.rollback()
    return state


def differences(before: dict, after: dict) -> dict[str, str]:
    return {name: f"{len(before[name])} rows -> {len(after[name])} rows, changed: "
                  f"{[row for row in after[name] if row not in before[name]][:3]}"
            for name in before if before[name] != after[name]}


def session_users(app: Flask, response) -> list:
    """The `_user_id` of every session cookie the response sets (None for a session without one)."""
    serializer = app.session_interface.get_signing_serializer(app)
    found = []
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        assert name != "remember_token", header
        value = rest.split(";", 1)[0]
        if name == app.config["SESSION_COOKIE_NAME"] and value:
            found.append(serializer.loads(value).get("_user_id"))
    return found


def signed_in(app: Flask, login, world: dict) -> dict[str, tuple[FlaskClient, str | None]]:
    people = {"anonymous": (app.test_client(), None)}
    for role in ("admin", "approver"):
        client = login(world[role])
        with client.session_transaction() as session:
            people[role] = (client, session["_user_id"])
    return people


def serves_a_page(app: Flask, url: str) -> bool:
    """Whether HEAD at `url` reaches a view: one that answers GET and takes no submission."""
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(url.split("?")[0], method="HEAD", return_rule=True)
    except MethodNotAllowed:
        return False
    view = app.view_functions[rule.endpoint]
    return "POST" not in rule.methods and not getattr(view, "is_spent_on_get", False)


def allowed(response) -> set[str]:
    return {method.strip() for method in response.headers.get("Allow", "").split(",") if method.strip()}


def methods_at(app: Flask, url: str) -> set[str]:
    """What the URL map says this URL takes, less HEAD where no page is served; OPTIONS always."""
    adapter = app.url_map.bind("localhost")
    methods = {"OPTIONS"}
    for method in ("GET", "POST"):
        try:
            adapter.match(url.split("?")[0], method=method)
            methods.add(method)
        except MethodNotAllowed:
            pass
    return methods | ({"HEAD"} if serves_a_page(app, url) else set())


def rules_of(app: Flask) -> list:
    return sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))


def test_no_method_but_get_and_post_changes_anything_or_logs_in(app, login, world):
    people = signed_in(app, login, world)
    sent = 0
    for rule in rules_of(app):
        url = url_of(app, rule, world)
        before = snapshot()
        for method in METHODS:
            for who, (client, token) in people.items():
                for with_csrf in (False, True):
                    data = submission(rule, world)
                    headers = {}
                    if with_csrf:
                        data["csrf_token"] = headers["X-CSRFToken"] = csrf_token(client)
                    response = client.open(url, method=method, data=data, headers=headers)
                    response.get_data()
                    response.close()
                    db.session.rollback()  # what the request did not commit is gone, as in production
                    where = f"{who} {method} {url} ({rule.endpoint}, csrf={with_csrf})"
                    assert response.status_code < 500, where
                    assert set(session_users(app, response)) <= {token}, f"{where} changed who is signed in"
                    if method in NEVER_ROUTED or (method == "HEAD" and not serves_a_page(app, url)):
                        assert response.status_code == 405, f"{where}: {response.status_code}"
                    if response.status_code == 405 or method == "OPTIONS":
                        # RFC 9110: a 405 names the methods the URL takes, and only those.
                        assert allowed(response) == methods_at(app, url), f"{where}: {allowed(response)}"
                    sent += 1
        after = snapshot()
        assert after == before, f"{rule.endpoint} {url}: {differences(before, after)}"
    assert sent == len(rules_of(app)) * len(METHODS) * len(people) * 2


# Rules whose POST, sent by this person with the walk's own data, must change the database: the proof
# that the walk sent real submissions. Keyed by path, so that it survives the auth views' GET/POST split.
CONTROLS = [
    ("/admin/policies/<int:policy_id>", "admin"),
    ("/admin/subscribers/topics/new", "admin"),
    ("/admin/subscribers/topics/<int:topic_id>/edit", "admin"),
    ("/admin/subscribers/import", "admin"),
    ("/admin/users/create", "admin"),
    ("/admin/users/<int:user_id>/disable", "admin"),
    ("/admin/change-sets/new", "approver"),
    ("/admin/change-sets/<int:change_set_id>/edit", "approver"),
    ("/admin/change-sets/<int:change_set_id>/documents/<slug:slug>", "approver"),
    ("/admin/change-sets/<int:change_set_id>/subprocessors/new", "approver"),
    ("/admin/change-sets/<int:change_set_id>/approve", "approver"),
    ("/admin/change-sets/<int:change_set_id>/schedule", "approver"),
    ("/subscriptions/", "anonymous"),
    ("/auth/login", "anonymous"),
]


def test_the_walk_s_submissions_are_valid(app, login, world):
    people = signed_in(app, login, world)
    for path, who in CONTROLS:
        rule = next(rule for rule in app.url_map.iter_rules() if rule.rule == path and "POST" in rule.methods)
        client, token = people[who]
        url = url_of(app, rule, world)
        before = snapshot()
        response = client.post(url, data={**submission(rule, world), "csrf_token": csrf_token(client)})
        where = f"POST {url} as {who}"
        assert response.status_code < 400, (where, response.status_code, response.text[:2000])
        assert snapshot() != before, f"{where} changed nothing: the walk's data is not valid there"
    # The last control, the login with the walk's data, really signs the admin in.
    assert path == "/auth/login"
    assert session_users(app, response) and session_users(app, response)[0] not in (None, token)


def test_no_rule_serves_a_page_and_a_submission(app):
    """Method dispatch: a rule is GET (HEAD runs the same view) or POST, never both, so that no view
    can take a HEAD for a submission."""
    mixed = sorted(f"{rule.rule} ({rule.endpoint})" for rule in app.url_map.iter_rules()
                   if {"GET", "POST"} <= rule.methods)
    assert mixed == []


def test_every_routed_state_changing_method_needs_a_csrf_token(app):
    safe = {"GET", "HEAD", "OPTIONS"}
    routed = set().union(*(rule.methods for rule in app.url_map.iter_rules()))
    assert routed <= VIEW_METHODS
    assert routed - safe <= set(app.config["WTF_CSRF_METHODS"])
    assert "POST" in routed - safe
