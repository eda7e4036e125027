"""Blueprints, error pages, security headers and template helpers."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pycountry
from flask import Flask, abort, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed
from werkzeug.routing import BaseConverter, IntegerConverter

from registry.domain import chain
from registry.domain.deadlines import deadline_words
from registry.domain.slugs import PATTERN as SLUG_PATTERN
from registry.services.reading import NOT_YET
from registry.web.caching import PageCache
from registry.web.params import MAX_ID

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Two years, every subdomain: browsers then refuse plain HTTP to the site before any request leaves.
HSTS = "max-age=63072000; includeSubDomains"
# What a page on another site may send to the read-only API and feeds (CORS), besides the headers
# browsers always allow: the validators that make a poll cheap.
CORS_REQUEST_HEADERS = ("If-None-Match", "If-Modified-Since")
# What it may read besides the headers browsers always expose.
CORS_EXPOSED_HEADERS = "ETag, Allow, Retry-After"
# The blueprints of the staff area and its sign-in: their pages hold personal data and one-time secrets.
STAFF_BLUEPRINTS = frozenset({"auth", "admin", "users", "subscribers", "notices", "audit", "policies",
                              "admin_objections", "organisations", "admin_endpoints"})
# A view is a page (GET, and HEAD answered by the same view) or a submission (POST); OPTIONS is answered
# by the method guard. Anything else (PUT, DELETE, TRACE, made-up methods) is refused before any view runs.
VIEW_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST"})


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return getattr(country, "common_name", None) or (country.name if country else code)


class SlugConverter(BaseConverter):
    """Anything that cannot be a slug is a 404 before it reaches the database."""

    regex = SLUG_PATTERN


def whole_numbers_up_to(limit: int) -> str:
    """A regular expression matching exactly the numbers 1 to `limit`, written without leading zeros.

    Routing must refuse a larger id in the pattern itself: Werkzeug reports a converter's later
    refusal as 405 when another method has a rule at the same path, instead of 404.
    """
    digits = str(limit)
    alternatives = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for position, digit in enumerate(digits):
        lowest = 1 if position == 0 else 0
        if int(digit) > lowest:
            # The same leading digits as `limit`, then a smaller digit here, then any digits.
            smaller = f"[{lowest}-{int(digit) - 1}]" if int(digit) - 1 > lowest else str(lowest)
            rest = len(digits) - position - 1
            alternatives.append(digits[:position] + smaller + (f"[0-9]{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


class IdConverter(IntegerConverter):
    """`<int:...>` everywhere: 1 to 2^31-1 without leading zeros, so each row has one URL and an id
    PostgreSQL cannot compare with an integer column is a 404 before it reaches the database."""

    regex = whole_numbers_up_to(MAX_ID)


def _serves_head(adapter) -> bool:
    """HEAD runs a GET view; a view that also takes POST may treat anything that is not GET as a
    submission, and HEAD skips CSRF and the POST-only login limits. Such a view is not served HEAD,
    and neither is a GET view with an effect (access.spent_on_get)."""
    try:
        rule, _ = adapter.match(method="HEAD", return_rule=True)
    except HTTPException:
        return False
    view = current_app.view_functions.get(rule.endpoint)
    return "POST" not in (rule.methods or ()) and not getattr(view, "is_spent_on_get", False)


def allowed_methods() -> list[str]:
    """The methods this URL answers, for `Allow` (RFC 9110 requires it on every 405, and OPTIONS
    names them): what its rules take, less HEAD where HEAD is refused, less what no view takes."""
    adapter = current_app.create_url_adapter(request)
    methods = set(adapter.allowed_methods()) & VIEW_METHODS
    if "HEAD" in methods and not _serves_head(adapter):
        methods.discard("HEAD")
    return sorted(methods)


def refuse_unsafe_methods():
    """The method guard, before CSRF and the limiter: a method no view at this URL takes is a 405
    naming the ones it does, whoever sends it and with what; OPTIONS is answered here, with the same
    list (Flask's own answer would offer HEAD where HEAD is refused)."""
    routing = request.routing_exception
    if routing is not None and not isinstance(routing, MethodNotAllowed):
        raise routing  # no such URL, whatever the method: 404
    allowed = allowed_methods()
    if request.method not in allowed:
        abort(405, valid_methods=allowed)
    if request.method == "OPTIONS":
        response = current_app.response_class(status=200)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return None


def cors_headers(response, allowed_origin_paths: tuple[str, ...]) -> None:
    """Any origin may read the read-only API, feeds and calendars (no credentials: nothing there depends on
    who asks); nothing else answers a cross-origin read, staff pages and forms least of all."""
    if not request.path.startswith(allowed_origin_paths):
        return
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        # A preflight: it may go ahead with the methods this URL takes (GET and HEAD there).
        response.headers["Access-Control-Allow-Methods"] = response.headers.get("Allow", "")
        response.headers["Access-Control-Allow-Headers"] = ", ".join(CORS_REQUEST_HEADERS)
        response.headers["Access-Control-Max-Age"] = "86400"


def staff_forms_take_form_data() -> None:
    """Staff POSTs are HTML forms. Flask-WTF would read a JSON body as the form's data instead (a
    JSON array or string made it fail with a 500): refuse JSON before any staff view runs."""
    if request.method == "POST" and request.blueprint in STAFF_BLUEPRINTS and request.is_json:
        abort(415, "Send this form as application/x-www-form-urlencoded or multipart/form-data.")


def init_app(app: Flask) -> None:
    from registry.web import (
        access,
        admin,
        admin_endpoints,
        admin_objections,
        api,
        audit,
        auth,
        calendar,
        documents,
        endpoints,
        feeds,
        notices,
        objections,
        organisations,
        policies,
        public,
        subprocessors,
        subscribers,
        subscriptions,
        users,
        webhooks,
    )

    app.url_map.converters["slug"] = SlugConverter
    app.url_map.converters["int"] = IdConverter
    settings = app.config["REGISTRY"]
    zone = ZoneInfo(settings.legal_timezone)
    app.extensions["page_cache"] = PageCache(
        settings.page_cache_seconds, settings.cdn_max_age, settings.legal_timezone
    )
    access.init_app(app)
    # Before CSRF and the limiter: a method no view takes is a 405, whoever sends it and with what.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unsafe_methods)
    app.before_request(staff_forms_take_form_data)
    for blueprint in (public.bp, subprocessors.bp, documents.bp, api.bp, subscriptions.bp, feeds.bp,
                      webhooks.bp, auth.bp, admin.bp, users.bp, subscribers.bp, notices.bp, audit.bp,
                      policies.bp, calendar.bp, objections.bp, admin_objections.bp, organisations.bp,
                      admin_endpoints.bp):
        app.register_blueprint(blueprint)
    endpoints.init_app(app)

    @app.template_filter("local_date")
    def local_date(value: datetime | date | None) -> str:
        if value is None:
            return ""
        if value == NOT_YET:
            return "once the notice has gone out"
        day = value.astimezone(zone).date() if isinstance(value, datetime) else value
        return f"{day.day} {day:%B %Y}"

    @app.template_filter("local_datetime")
    def local_datetime(value: datetime | None) -> str:
        if value is None:
            return ""
        if value == NOT_YET:
            return "once the notice has gone out"
        local = value.astimezone(zone)
        return f"{local.day} {local:%B %Y, %H:%M %Z}"

    @app.template_filter("deadline")
    def deadline(value: datetime | None) -> str:
        """An objection deadline in words: the last day it includes, in the legal zone and UTC."""
        return deadline_words(value, settings.legal_timezone).text if value else ""

    @app.template_filter("iso")
    def iso(value: datetime | date | None) -> str:
        return value.isoformat() if value and value != NOT_YET else ""

    app.jinja_env.filters["country"] = country_name
    app.jinja_env.filters["chain_of"] = chain.chain_from_json
    app.jinja_env.filters["chain_text"] = chain.chain_text
    app.jinja_env.filters["chain_delta"] = chain.chain_delta
    app.jinja_env.filters["chain_tree"] = chain.ordered
    app.jinja_env.filters["service_label"] = chain.service_label
    # JSON to read on a page (the audit log): real characters, escaped by Jinja like any text.
    app.jinja_env.filters["json_text"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    app.jinja_env.globals["settings"] = settings
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in app.view_functions

    # The calendars too: a browser-based calendar or risk tool reads them like the feeds.
    cors_paths = (*(blueprint.url_prefix + "/" for blueprint in (api.bp, feeds.bp)), "/calendar.ics",
                  "/calendar/")

    @app.after_request
    def security_headers(response):
        cors_headers(response, cors_paths)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if settings.is_production:
            response.headers["Strict-Transport-Security"] = HSTS
        if request.blueprint in STAFF_BLUEPRINTS or response.status_code >= 400:
            # Staff redirects and errors too, and errors raised before routing found a blueprint (an
            # unknown /admin/ URL, a 405): a shared cache or the back button must never replay them.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if wants_json():
            response = jsonify(error={"status": error.code, "title": error.name,
                                      "message": error.description})
        else:
            response = app.make_response(
                render_template("errors/error.html", error=error)
            )
        response.status_code = error.code or 500
        # The exception's own headers: Allow on a 405 (RFC 9110 requires it), Retry-After on a 429.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        return http_error(InternalServerError(
            "Something went wrong on our side. The error has been logged; please try again later."
        ))
