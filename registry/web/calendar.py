"""Calendars (RFC 5545) of effective dates and objection deadlines: all, each document, sub-processors."""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, url_for

from registry.domain import calendar
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Document
from registry.services import calendar as calendar_service
from registry.services import reading
from registry.web.caching import cached

bp = Blueprint("calendar", __name__)

CONTENT_TYPE = "text/calendar; charset=utf-8"


def _page_of(change_set: ChangeSet) -> str:
    """Where a reader learns what the change is: the new version, the entry, or the list of changes."""
    base = current_app.config["REGISTRY"].base_url
    if change_set.status != ChangeStatus.WITHDRAWN:
        for version in change_set.document_versions:
            if version.number:
                return base + url_for("documents.version", slug=version.document.slug, number=version.number)
        for record in change_set.subprocessor_records:
            return base + url_for("subprocessors.entry", slug=record.subprocessor.slug)
    return base + url_for("public.changes")


def _calendar(name: str, *, document: Document | None = None, subprocessors: bool = False) -> Response:
    settings = current_app.config["REGISTRY"]
    zone = ZoneInfo(settings.legal_timezone)
    host = urlsplit(settings.base_url).hostname or "localhost"
    found = calendar_service.changes(db.session, now_utc(), _page_of, document=document,
                                     subprocessors=subprocessors)
    body = calendar.to_ics(calendar.events(found, host=host, zone=zone),
                           name=f"{settings.company_name}: {name}",
                           prodid=f"-//{settings.company_name}//Sub-processor registry//EN")
    return Response(body, content_type=CONTENT_TYPE)


@bp.get("/calendar.ics")
@cached
def everything():
    return _calendar("changes to sub-processors and legal documents")


@bp.get("/calendar/subprocessors.ics")
@cached
def subprocessors():
    return _calendar("sub-processor changes", subprocessors=True)


@bp.get("/calendar/documents/<slug:slug>.ics")
@cached
def document(slug: str):
    doc = reading.document(db.session, slug)
    if doc is None:
        abort(404, description="There is no document at this address.")
    return _calendar(f"changes to the {doc.title}", document=doc)
