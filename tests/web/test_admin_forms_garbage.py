"""Garbage into every staff workspace form: a clear error, nothing stored, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    ChangeSet,
    ChangeSetEvent,
    Comment,
    Document,
    DocumentVersion,
    SubProcessor,
    SubProcessorRecord,
)
from registry.services import workflow
from tests import factories
from tests.services.test_workflow import build_registry

HUGE = "x" * 600_000  # beyond the 500 kB a form may hold
LONG_LINE = "y" * 400
NUL = "abc\x00def"
CONTROL = "tab\tok but bell\x07 is not"

NEW_CHANGE_SET = {"title": "Title", "summary": "Summary", "materiality": "material"}
DOCUMENT = {"source": "# Privacy\n\nNew text.", "summary": "What changed", "materiality": "material",
            "action": "save"}
SUBPROCESSOR = {"slug": "newco", "name": "NewCo", "legal_entity": "NewCo Ltd", "address": "1 Road, Dublin",
                "contact": "privacy@newco.example", "purpose": "Hosting", "description": "",
                "data_categories": "Account data", "countries": "IE", "transfer_mechanism": "Within the EEA",
                "website": "https://newco.example", "feature": "", "summary": "New host"}
SCHEDULE = {"effective_date": "2200-01-01", "effective_time": "00:00"}

GARBAGE_TEXT = [("", "empty"), ("   ", "blank"), (HUGE, "huge"), (NUL, "nul"), (CONTROL, "control")]

CASES = [
    # (form, field, value)
    *[("new", "title", v) for v, _ in GARBAGE_TEXT],
    ("new", "title", LONG_LINE), ("new", "title", "two\nlines"),
    *[("new", "summary", v) for v, _ in GARBAGE_TEXT],
    ("new", "materiality", ""), ("new", "materiality", "maybe"), ("new", "materiality", NUL),
    *[("edit", "title", v) for v, _ in GARBAGE_TEXT], ("edit", "materiality", "perhaps"),
    *[("document", "source", v) for v, _ in GARBAGE_TEXT if v != "   "],
    *[("document", "summary", v) for v, _ in GARBAGE_TEXT], ("document", "materiality", "x"),
    *[("add", "slug", v) for v in ["", "Bad Slug", "-x", "changes", "a" * 81, "ü-umlaut", NUL]],
    ("add", "slug", "acme"),  # already exists
    *[("add", "name", v) for v, _ in GARBAGE_TEXT], ("add", "name", LONG_LINE),
    *[("add", "countries", v) for v in ["", "XX", "Germany", "DE, ZZ", "D E", NUL, ",,,"]],
    ("add", "website", "javascript:alert(1)"), ("add", "website", "ftp://x"),
    ("add", "transfer_mechanism", ""), ("add", "address", HUGE), ("add", "contact", NUL),
    ("add", "data_categories", "a\nb"), ("add", "summary", ""),
    *[("change", "name", v) for v, _ in GARBAGE_TEXT], ("change", "countries", "QQ"),
    ("change", "purpose", LONG_LINE),
    *[("remove", "summary", v) for v, _ in GARBAGE_TEXT],
    *[("comment", "body", v) for v, _ in GARBAGE_TEXT], ("comment", "body", "z" * 10_001),
    *[("schedule", "effective_date", v) for v in ["", "tomorrow", "2026-13-45", "2026-02-30", "99999-01-01",
                                                   "0001-01-01", "1999-12-31", "2026/12/24", NUL, HUGE]],
    *[("schedule", "effective_time", v) for v in ["", "25:00", "12:60", "noon", "00:00:00:00", NUL]],
    ("schedule", "effective_date", "2020-01-01"),  # in the past: before the earliest allowed
    ("schedule", "new_customers_date", "2026-02-30"), ("schedule", "new_customers_time", "99:99"),
    ("schedule", "new_customers_date", "2300-01-01"),
    ("return", "note", NUL), ("return", "note", HUGE), ("withdraw", "note", "w" * 5001),
    ("discard", "version_id", "abc"), ("discard", "version_id", "9" * 40), ("discard", "record_id", "-1"),
    ("discard", "version_id", NUL),
]
MESSAGES = ("field-error", "flash-error", "Request Entity Too Large", "Bad Request")


@pytest.fixture
def setup(app, make_user, login):
    build_registry(db.session, datetime.now(UTC))
    editor, approver, second = make_user("editor"), make_user("approver"), make_user("approver")
    draft = workflow.create(db.session, title="Draft", summary="s", is_material=True, actor=editor)
    document = build_document(db.session)
    workflow.save_document_version(db.session, draft, document, source_md="# Draft", summary="s",
                                   is_material=True, actor=editor)
    ready = workflow.create(db.session, title="Ready", summary="s", is_material=True, actor=editor)
    workflow.save_document_version(db.session, ready, document, source_md="# Ready", summary="s",
                                   is_material=True, actor=editor)
    workflow.submit(db.session, ready, actor=editor)
    workflow.approve(db.session, ready, actor=approver)
    in_review = workflow.create(db.session, title="Review", summary="s", is_material=True, actor=editor)
    workflow.save_document_version(db.session, in_review, document, source_md="# Review", summary="s",
                                   is_material=True, actor=editor)
    workflow.submit(db.session, in_review, actor=editor)
    db.session.commit()
    return {"editor": login(editor), "approver": login(second), "draft": draft.id, "ready": ready.id,
            "in_review": in_review.id}


def build_document(session):
    return session.scalar(select(Document).where(Document.slug == "privacy-policy"))


def target(form: str, setup: dict) -> tuple[str, str, dict]:
    draft, ready, review = setup["draft"], setup["ready"], setup["in_review"]
    return {
        "new": ("editor", "/admin/change-sets/new", NEW_CHANGE_SET),
        "edit": ("editor", f"/admin/change-sets/{draft}/edit", NEW_CHANGE_SET),
        "document": ("editor", f"/admin/change-sets/{draft}/documents/privacy-policy", DOCUMENT),
        "add": ("editor", f"/admin/change-sets/{draft}/subprocessors/new", SUBPROCESSOR),
        "change": ("editor", f"/admin/change-sets/{draft}/subprocessors/acme",
                   {**SUBPROCESSOR, "slug": "acme"}),
        "remove": ("editor", f"/admin/change-sets/{draft}/subprocessors/acme/remove", {"summary": "Ended"}),
        "comment": ("editor", f"/admin/change-sets/{draft}/comments", {"body": "Fine"}),
        "schedule": ("approver", f"/admin/change-sets/{ready}/schedule", SCHEDULE),
        "return": ("approver", f"/admin/change-sets/{review}/return", {"note": "ok"}),
        "withdraw": ("editor", f"/admin/change-sets/{draft}/withdraw", {"note": "ok"}),
        "discard": ("editor", f"/admin/change-sets/{draft}/discard", {"version_id": "1"}),
    }[form]


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in (ChangeSet, DocumentVersion, SubProcessorRecord, SubProcessor, ChangeSetEvent,
                          Comment)}


def statuses() -> list[str]:
    return list(db.session.scalars(select(ChangeSet.status).order_by(ChangeSet.id)))


@pytest.mark.parametrize("form, field, value", CASES,
                         ids=[f"{f}-{n}-{i}" for i, (f, n, _v) in enumerate(CASES)])
def test_garbage_is_refused_with_a_message_and_nothing_is_stored(setup, form, field, value):
    who, url, valid = target(form, setup)
    client = setup[who]
    before, states = counts(), statuses()

    response = client.post(url, data={"csrf_token": client.csrf(), **valid, field: value})

    assert 400 <= response.status_code < 500, response.status_code
    body = response.get_data(as_text=True)
    assert any(message in body for message in MESSAGES), body[-2000:]
    assert counts() == before
    assert statuses() == states


@pytest.mark.parametrize("form", ["new", "edit", "document", "add", "change", "remove", "comment",
                                  "schedule"])
def test_the_valid_baseline_is_accepted(setup, form):
    # Guards the garbage test: each refusal above is due to the one bad field, not the rest.
    who, url, valid = target(form, setup)
    client = setup[who]
    data = dict(valid)
    if form == "schedule":
        data["effective_date"] = "2100-01-01"
    response = client.post(url, data={"csrf_token": client.csrf(), **data})
    assert response.status_code == 302, response.get_data(as_text=True)[-3000:]


@pytest.mark.parametrize("field, value, status", [
    ("document", NUL, 404), ("document", "x" * 1000, 404), ("document", "../etc", 404),
    ("change_set", "abc", 200), ("change_set", "9" * 40, 200), ("change_set", NUL, 200),
    ("source", HUGE, 413),
])
def test_garbage_into_the_live_preview(setup, field, value, status):
    client = setup["editor"]
    data = {"source": "# Hi", "document": "privacy-policy", "change_set": str(setup["draft"]), field: value}
    response = client.post("/admin/preview", headers={"X-CSRFToken": client.csrf()}, data=data)
    assert response.status_code == status
    assert response.is_json or status == 413
    if response.is_json and status != 200:
        assert response.get_json()["error"]["message"]


XSS = [
    "<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>', "<iframe src=//evil.example></iframe>",
    '<svg onload="alert(1)"></svg>', "[x](JaVaScRiPt:alert(1))", '"><script>alert(1)</script>',
]


@pytest.mark.parametrize("payload", XSS)
def test_xss_in_markdown_is_stored_as_written_and_never_rendered_live(setup, payload):
    client = setup["editor"]
    url = f"/admin/change-sets/{setup['draft']}/documents/privacy-policy"
    response = client.post(url, data={"csrf_token": client.csrf(), **DOCUMENT, "source": f"# T\n\n{payload}",
                                      "summary": payload})
    assert response.status_code == 302
    page = client.get(f"/admin/change-sets/{setup['draft']}").get_data(as_text=True)
    preview = client.post(url, data={"csrf_token": client.csrf(), **DOCUMENT, "source": payload,
                                     "action": "preview"}).get_data(as_text=True)
    for html in (page, preview):
        assert live_markup(html) == []


class LiveMarkup(HTMLParser):
    """Collects whatever a browser would run: script elements, handlers, javascript: links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("iframe", "svg", "object", "embed"):
            self.found.append(tag)
        if tag == "script" and not dict(attrs).get("src", "").startswith("/static/"):
            self.found.append("inline script")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript"):
                self.found.append(f"{tag} {name}={value}")


def live_markup(html: str) -> list[str]:
    parser = LiveMarkup()
    parser.feed(html)
    return parser.found


# --- malformed request bodies into every staff POST --------------------------------------------------

# (Content-Type, body): none of them is a valid submission for any staff form.
MALFORMED = [
    ("application/json", b"[1, 2]"),  # Flask-WTF read JSON as form data: a list or a string was a 500
    ("application/json", b'"just a string"'),
    ("application/json", b'{"title": ["a", {"b": 1}], "summary": null, "materiality": 5, "length": [1]}'),
    ("application/json", b'{"title": '),
    ("text/plain", b"title=Plain&summary=Text&materiality=material"),
    ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--x--\r\n'),
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="title"\r\n\r\nunterminated'),
    ("multipart/form-data; boundary=x",  # a file, but not in the field the import reads
     b'--x\r\nContent-Disposition: form-data; name="upload"; filename="c.csv"\r\n\r\nemail\r\nx@example.com'
     b"\r\n--x--\r\n"),
    ("application/x-www-form-urlencoded",
     b"title=%FF%FE%00&summary=%E2%82%00&materiality=material&materiality=non-material&length=%00"),
    ("application/x-www-form-urlencoded", b"%00=1&=2&&&==&title&summary=&" + b"key=" + b"k" * 10_000),
    ("application/x-www-form-urlencoded", b"&".join([b"position=1"] * 5000) + b"&name=%00&summary=%07"),
]
# The form views: whatever arrives that is not a valid submission stores nothing. (Buttons such as
# submit, approve, disable or logout need no fields, so any CSRF-valid POST is a valid click.)
FORM_ENDPOINTS = {
    "admin.create_change_set", "admin.update_change_set", "admin.save_document", "admin.create_subprocessor",
    "admin.update_subprocessor", "admin.save_removal", "admin.save_schedule", "admin.add_comment",
    "policies.update", "subscribers.create_topic", "subscribers.update_topic", "subscribers.upload_contacts",
    "users.create", "organisations.create", "organisations.update",
    "admin_objections.move", "admin_objections.note", "admin_endpoints.create",
}


@pytest.fixture
def staff_world(setup, make_user, login):
    from registry.models import NoticePolicy, Topic, User

    topic = db.session.scalar(select(Topic).order_by(Topic.id))
    policy = db.session.scalar(select(NoticePolicy).order_by(NoticePolicy.id))
    editor_id = db.session.scalar(select(User.id).where(User.role == "editor"))
    organisation = factories.organisation("Garbage Test Ltd", ("garbage-test.example",))
    objection = _objection(factories.announced_change(now_utc(), title="Garbage objections"))
    from registry.services import endpoints

    endpoint, _ = endpoints.create(db.session, endpoints.Owner(organisation=organisation),
                                   url="https://hooks.garbage-test.example/", topic_keys=[topic.key],
                                   actor="test")
    ping = endpoints.deliveries(db.session, endpoint)[0]
    db.session.commit()
    return {**setup, "admin": login(make_user("admin")), "user_id": editor_id, "topic_id": topic.id,
            "policy_id": policy.id, "organisation_id": organisation.id, "objection_id": objection.id,
            "endpoint_id": endpoint.id, "delivery_id": ping.id}


def _objection(change_set):
    """A received objection to the change, committed (the staff forms move it and add notes)."""
    from registry.models import Objection

    now = now_utc()
    row = Objection(change_set_id=change_set.id, kind="objection", status="received", year=now.year,
                    number=9001, reference=f"OBJ-{now.year}-9001", email="dpo@customer.example",
                    organisation="Customer Ltd", contact_name="Dee", role="controller", items=[],
                    grounds="Not on our list.", source="form", created_at=now, received_at=now)
    db.session.add(row)
    db.session.commit()
    return row


def staff_post_urls(app, world: dict) -> list[tuple[str, str, str]]:
    from registry.web import STAFF_BLUEPRINTS

    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "POST" not in rule.methods or rule.endpoint.split(".")[0] not in STAFF_BLUEPRINTS:
                continue
            values = {}
            for name in rule.arguments:
                if name == "change_set_id":
                    values[name] = (world["ready"] if rule.rule.endswith("/schedule") else
                                    world["in_review"] if rule.rule.endswith(("/approve", "/return")) else
                                    world["draft"])
                elif name == "slug":
                    values[name] = "acme" if "subprocessors" in rule.rule else "privacy-policy"
                elif name == "token":
                    values[name] = "t" * 32
                else:
                    values[name] = world[name]
            who = "approver" if rule.endpoint.startswith(("admin.", "admin_objections.")) else "admin"
            found.append((rule.endpoint, rule.build(values, append_unknown=False)[1], who))
    return found


def every_row() -> dict[str, list[tuple]]:
    db.session.rollback()
    return {table.name: sorted(map(tuple, db.session.execute(
        select(*[c for c in table.columns if c.name != "last_seen_at"])).all()), key=repr)
        for table in db.metadata.sorted_tables}


@pytest.mark.parametrize(("content_type", "body"), MALFORMED,
                         ids=[f"{i}-{t.split(';')[0]}" for i, (t, _b) in enumerate(MALFORMED)])
def test_malformed_bodies_into_every_staff_post(app, staff_world, content_type, body):
    urls = staff_post_urls(app, staff_world)
    assert {endpoint for endpoint, _url, _who in urls} >= FORM_ENDPOINTS
    for endpoint, url, who in urls:
        if endpoint == "auth.logout":
            continue  # a CSRF-valid POST is a valid logout, whatever the body; it would end the session
        client = staff_world[who]
        before = every_row() if endpoint in FORM_ENDPOINTS else None
        response = client.post(url, data=body, headers={"Content-Type": content_type,
                                                        "X-CSRFToken": client.csrf()})
        where = f"{who} POST {url} ({endpoint}) {content_type}: {response.status_code}"
        assert response.status_code < 500, where
        if content_type == "application/json":
            assert response.status_code == 415, where
            assert "application/x-www-form-urlencoded" in response.text
        if before is not None:
            assert 400 <= response.status_code < 500, where
            assert every_row() == before, where


@pytest.mark.parametrize(("form", "message", "pages"), [
    ({"key": "k" * 10_000, "name": "x"}, "topic key", ["new"]),  # an existing topic's key is fixed
    ({"key": "ok", "name": HUGE}, "name", ["new", "edit"]),
    ({"key": "ok", "name": "x", "position": "99999999999"}, "whole number", ["new", "edit"]),
    ({"key": "ok", "name": "x", "position": "1e3"}, "whole number", ["new", "edit"]),
    ({"key": "ok", "name": "x", "position": "--1"}, "whole number", ["new", "edit"]),  # was a 500
    ({"key": "ok", "name": "x", "position": "\N{ARABIC-INDIC DIGIT THREE}"}, "whole number", ["new", "edit"]),
    ({"key": "ok", "name": "x", "position": "\N{SUPERSCRIPT TWO}"}, "whole number", ["new", "edit"]),
    ({"key": "ok", "name": "x", "description": HUGE}, "description", ["new", "edit"]),
    ({"key": "ok", "name": "\x00\t\x07"}, "name", ["new", "edit"]),  # nothing left once cleaned
])
def test_topic_forms_refuse_garbage_and_store_nothing(app, staff_world, form, message, pages):
    client = staff_world["admin"]
    urls = {"new": "/admin/subscribers/topics/new",
            "edit": f"/admin/subscribers/topics/{staff_world['topic_id']}/edit"}
    before = every_row()
    for page in pages:
        response = client.post(urls[page], data={"csrf_token": client.csrf(), **form})
        assert response.status_code == 422, (page, response.status_code)
        assert message in response.text.lower(), response.text[-2000:]
        assert every_row() == before
