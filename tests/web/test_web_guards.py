"""The app-wide guards in registry.web: methods a view may see, the bounded id converter, HSTS."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter

from registry import create_app
from registry.extensions import db
from registry.settings import Settings
from registry.web import HSTS, IdConverter, whole_numbers_up_to
from registry.web.params import MAX_ID
from tests.conftest import make_settings

OUT_OF_RANGE = ["2147483648", "9999999999", "99999999999999999999999", "0", "007", "-1", "+1", "1.0", "1e3",
                "\N{ARABIC-INDIC DIGIT THREE}", "\N{FULLWIDTH DIGIT ONE}"]


# --- methods ---------------------------------------------------------------------------------------

@pytest.fixture
def guarded(tmp_path) -> tuple[Flask, list[str]]:
    """An app with two deliberately bad rules: one view for GET and POST, one rule that allows PUT."""
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path))
    app.config["TESTING"] = True
    ran: list[str] = []

    def both():
        ran.append(f"both {__import__('flask').request.method}")
        return "ok"

    def put():
        ran.append("put")
        return "ok"

    app.add_url_rule("/both", "both", both, methods=["GET", "POST"])
    app.add_url_rule("/put", "put", put, methods=["GET", "PUT", "DELETE"])
    return app, ran


def test_head_never_reaches_a_view_that_also_takes_post(guarded):
    app, ran = guarded
    client = app.test_client()
    response = client.head("/both")
    assert response.status_code == 405
    # HEAD is refused here, so the Allow header does not offer it.
    assert set(response.headers["Allow"].split(", ")) == {"GET", "OPTIONS", "POST"}
    assert ran == []
    assert client.get("/both").status_code == 200 and ran == ["both GET"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_no_view_sees_a_method_outside_get_head_options_post_even_when_its_rule_allows_it(guarded, method):
    app, ran = guarded
    response = app.test_client().open("/put", method=method)
    assert response.status_code == 405
    # What no view ever sees is not offered either, whatever the rule says.
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert ran == []
    assert app.test_client().head("/put").status_code == 200  # a page-only rule still answers HEAD


def test_options_is_answered_without_the_view(guarded):
    app, ran = guarded
    response = app.test_client().options("/both")
    assert response.status_code == 200
    assert response.headers["Allow"] == "GET, OPTIONS, POST"  # as the 405 says: no HEAD here
    assert ran == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "BREW", "OPTIONS", "POST", "HEAD"])
def test_an_unknown_url_is_404_whatever_the_method(guarded, method):
    app, _ = guarded
    assert app.test_client().open("/nowhere", method=method).status_code == 404


@pytest.mark.parametrize(("path", "allow"), [
    ("/", "GET, HEAD, OPTIONS"), ("/subprocessors/", "GET, HEAD, OPTIONS"),
    ("/subscriptions/", "GET, HEAD, OPTIONS, POST"), ("/auth/login", "GET, HEAD, OPTIONS, POST"),
    ("/api/v1/documents", "GET, HEAD, OPTIONS"), ("/feeds/all.atom", "GET, HEAD, OPTIONS"),
])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE", "POST"])
def test_every_405_names_the_methods_the_page_takes(client, path, allow, method):
    response = client.open(path, method=method)
    if method == "POST" and "POST" in allow:
        return  # a submission, answered by its view
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    if path.startswith("/api/"):
        assert response.get_json()["error"]["status"] == 405
    else:
        assert "text/html" in response.content_type


# --- ids -------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(limit=st.sampled_from([1, 7, 9, 10, 99, 100, 101, 2026, 90_000, MAX_ID]) | st.integers(1, 10**12),
       number=st.integers(-10, 10**12) | st.integers(MAX_ID - 1000, MAX_ID + 1000))
def test_the_id_pattern_matches_exactly_1_to_the_limit(limit, number):
    pattern = re.compile(whole_numbers_up_to(limit))
    assert bool(pattern.fullmatch(str(number))) == (1 <= number <= limit)
    assert not pattern.fullmatch("0" + str(abs(number)))  # one URL per row: no leading zeros


def test_the_converter_takes_exactly_1_to_2_31_minus_1():
    converter = IdConverter(None)
    assert isinstance(converter, IntegerConverter)  # code that recognises int parts keeps working
    for good in ("1", "42", str(MAX_ID)):
        assert re.fullmatch(converter.regex, good) and converter.to_python(good) == int(good)
    for bad in OUT_OF_RANGE:
        assert not re.fullmatch(converter.regex, bad), bad
    assert converter.to_url(7) == "7"


def int_rules(app: Flask) -> list:
    return [rule for rule in app.url_map.iter_rules()
            if any(isinstance(converter, IntegerConverter) for converter in rule._converters.values())]


def url_with(rule, value: str) -> str:
    """The rule's path with `value` written into every int part (and a real-looking slug elsewhere)."""
    parts = []
    for is_dynamic, text in rule._trace:
        if not is_dynamic:
            parts.append(text)
        elif isinstance(rule._converters[text], IntegerConverter):
            parts.append(value)
        else:
            parts.append("privacy-policy" if text != "token" else "x" * 20)
    return "".join(parts).split("|", 1)[1]


def test_every_int_rule_answers_impossible_ids_with_404_and_never_500(app, make_user, login):
    rules = int_rules(app)
    assert len(rules) >= 20
    people = [login(make_user(role)) for role in ("admin", "approver")]
    for rule in rules:
        for client in people:
            for value in [*OUT_OF_RANGE, str(MAX_ID)]:
                url = url_with(rule, value)
                for method in sorted(rule.methods & {"GET", "POST"}):
                    data = {"csrf_token": client.csrf()} if method == "POST" else None
                    response = client.open(url, method=method, data=data)
                    response.get_data()
                    response.close()
                    where = f"{method} {url} ({rule.endpoint}): {response.status_code}"
                    if value == str(MAX_ID):
                        # A possible id that is not there: the view's own 404 (or 403 for the wrong role).
                        assert response.status_code in (403, 404), where
                    else:
                        assert response.status_code == 404, where


def test_a_largest_id_reaches_the_view_and_is_not_found(app, make_user, login):
    admin = login(make_user("admin"))
    for url in (f"/admin/users/{MAX_ID}/disable", f"/admin/policies/{MAX_ID}"):
        response = admin.post(url, data={"csrf_token": admin.csrf()})
        assert response.status_code == 404
        assert "no such" in response.text


def test_urls_are_built_with_plain_numbers(app):
    from flask import url_for

    with app.test_request_context():
        assert url_for("admin.change_set", change_set_id=12) == "/admin/change-sets/12"


# --- HSTS ------------------------------------------------------------------------------------------

def production_app(tmp_path) -> Flask:
    settings = Settings.from_env({
        "REGISTRY_ENV": "production", "REGISTRY_INSTANCE_PATH": str(tmp_path),
        "REGISTRY_SECRET_KEY": "s" * 40, "REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
        "REGISTRY_SENDGRID_API_KEY": "SG.key", "REGISTRY_SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw...",
        "REGISTRY_BASE_URL": "https://trust.example.com", "REGISTRY_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    })
    app = create_app(settings)
    with app.app_context():
        db.create_all()
    return app


def test_production_sends_hsts_on_every_response(tmp_path):
    app = production_app(tmp_path)
    client = app.test_client()
    responses = {
        "public page": client.get("/subprocessors/", base_url="https://trust.example.com"),
        "api": client.get("/api/v1/subprocessors", base_url="https://trust.example.com"),
        "static file": client.get("/static/css/site.css", base_url="https://trust.example.com"),
        "staff redirect": client.get("/admin/", base_url="https://trust.example.com"),
        "not found": client.get("/no-such-page", base_url="https://trust.example.com"),
        "method not allowed": client.put("/admin/", base_url="https://trust.example.com"),
        "head": client.head("/documents/", base_url="https://trust.example.com"),
    }
    with app.app_context():
        db.engine.dispose()
    assert {name: r.status_code for name, r in responses.items()} == {
        "public page": 200, "api": 200, "static file": 200, "staff redirect": 302, "not found": 404,
        "method not allowed": 405, "head": 200}
    for name, response in responses.items():
        response.close()
        assert response.headers.get("Strict-Transport-Security") == HSTS, name
    assert HSTS == "max-age=63072000; includeSubDomains"


def test_development_and_tests_send_no_hsts(client):
    # Over plain http on 127.0.0.1 HSTS would be ignored at best and pin localhost at worst.
    assert "Strict-Transport-Security" not in client.get("/subprocessors/").headers
