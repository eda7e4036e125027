"""Blueprints, error pages, security headers and template helpers."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pycountry
from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import BaseConverter

from registry.domain.slugs import PATTERN as SLUG_PATTERN
from registry.services.reading import NOT_YET
from registry.web.caching import PageCache

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return getattr(country, "common_name", None) or (country.name if country else code)


class SlugConverter(BaseConverter):
    """Anything that cannot be a slug is a 404 before it reaches the database."""

    regex = SLUG_PATTERN


def init_app(app: Flask) -> None:
    from registry.web import (
        access,
        admin,
        api,
        audit,
        auth,
        documents,
        feeds,
        notices,
        policies,
        public,
        subprocessors,
        subscribers,
        subscriptions,
        users,
        webhooks,
    )

    app.url_map.converters["slug"] = SlugConverter
    settings = app.config["REGISTRY"]
    zone = ZoneInfo(settings.legal_timezone)
    app.extensions["page_cache"] = PageCache(
        settings.page_cache_seconds, settings.cdn_max_age, settings.legal_timezone
    )
    access.init_app(app)
    for blueprint in (public.bp, subprocessors.bp, documents.bp, api.bp, subscriptions.bp, feeds.bp,
                      webhooks.bp, auth.bp, admin.bp, users.bp, subscribers.bp, notices.bp, audit.bp,
                      policies.bp):
        app.register_blueprint(blueprint)

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

    @app.template_filter("iso")
    def iso(value: datetime | date | None) -> str:
        return value.isoformat() if value and value != NOT_YET else ""

    app.jinja_env.filters["country"] = country_name
    # JSON to read on a page (the audit log): real characters, escaped by Jinja like any text.
    app.jinja_env.filters["json_text"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    app.jinja_env.globals["settings"] = settings
    app.jinja_env.globals["has_endpoint"] = lambda endpoint: endpoint in app.view_functions

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
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
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        return http_error(InternalServerError(
            "Something went wrong on our side. The error has been logged; please try again later."
        ))
