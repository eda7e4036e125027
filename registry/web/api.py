"""The versioned JSON API under /api/v1/: the public registry the pages show, for machines."""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for

from registry.domain import dora
from registry.domain import subprocessors as domain
from registry.domain.chain import Link, ordered
from registry.domain.clock import now_utc
from registry.domain.spreadsheet import safe_cell
from registry.extensions import db
from registry.models import ChangeSet, Document
from registry.services import reading
from registry.web import openapi, params
from registry.web.caching import cached, content_last_modified
from registry.web.documents import document_and_versions
from registry.web.subprocessors import LIST_PARAMS, SORT_LABELS, Facets, entry_events, facets_of, listing

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
# What a page link repeats of the request's query (besides its page): the parameters the lists read
# (not the HTML list's `announced`: the API lists what is in effect).
LINK_PARAMS = frozenset({*LIST_PARAMS, "since", "per_page"}) - {"announced"}


@bp.before_request
def one_value_per_parameter():
    """A parameter sent twice or empty is a client's mistake: say so rather than guess what was meant
    (the HTML pages take an empty field as "no filter", as forms send it; a client can leave it out)."""
    for name in request.args:
        values = request.args.getlist(name)
        shown = name[:40]
        if len(values) > 1:
            abort(400, description=f"'{shown}' is given {len(values)} times: give it once.")
        if not values[0]:
            abort(400, description=f"'{shown}' is empty: give a value or leave the parameter out.")


def filter_values() -> Facets:
    """The values the list's purpose and mechanism filters take: what the published entries have.
    The description's enums and the validation both come from here."""
    return facets_of(reading.subprocessor_events(db.session))


def _choices() -> openapi.Choices:
    """The registry's content as the description needs it: enums, and examples naming real rows."""
    facets = filter_values()
    now = now_utc()
    listed = domain.listing_at(reading.subprocessor_events(db.session), now)
    documents = [(d, reading.versions(db.session, d)) for d in reading.documents(db.session)]
    document, versions = next(((d, v) for d, v in documents if v), (None, []))
    current = reading.current_version(versions, now) if versions else None
    return openapi.Choices(
        purposes=facets.purposes, mechanisms=facets.mechanisms,
        subprocessor=listed[0].entry.slug if listed else None,
        document=document.slug if document else None,
        version=(current or versions[-1]).number if versions else None)


def _refuse_unknown_filters(facets: Facets) -> None:
    params.one_of("purpose", facets.purposes)
    params.one_of("mechanism", facets.mechanisms)
    params.one_of("country", params.COUNTRY_CODES,
                  what="Give an ISO 3166-1 alpha-2 code in upper case, such as DE or US")
    params.one_of("sort", SORT_LABELS)


def _absolute(endpoint: str, **values) -> str:
    # The configured base URL, never the request's Host header: bodies are cached and shared.
    return current_app.config["REGISTRY"].base_url + url_for(endpoint, **values)


def _iso(value: datetime | None) -> str | None:
    """Null for no date, and for a date that waits on a notice still going out (reading.NOT_YET)."""
    return value.isoformat() if value and value != reading.NOT_YET else None


def _paginate(items: Sequence) -> tuple[Sequence, dict, dict]:
    """The requested page of `items`, its meta and its links; a page past the last is a 404."""
    page = params.positive_int("page", 1)
    per_page = params.positive_int("per_page", DEFAULT_PER_PAGE, maximum=MAX_PER_PAGE)
    pages = max(1, math.ceil(len(items) / per_page))
    if page > pages:
        abort(404, description=f"Page {page} is past the last page: with per_page={per_page} "
                               f"there {'is' if pages == 1 else 'are'} {pages} "
                               f"page{'' if pages == 1 else 's'}.")
    path = _absolute(request.endpoint, **(request.view_args or {}))

    def link(number: int) -> str:
        query = [(k, v) for k in sorted(LINK_PARAMS) if (v := request.args.get(k))]
        return f"{path}?{urlencode([*query, ('page', str(number))])}"

    start = (page - 1) * per_page
    meta = {"total": len(items), "page": page, "per_page": per_page, "pages": pages}
    links = {"self": link(page), "next": link(page + 1) if page < pages else None,
             "prev": link(page - 1) if page > 1 else None}
    return items[start:start + per_page], meta, links


# Serialisers: plain dicts in the order a reader expects.

def _entry(entry: domain.Entry) -> dict:
    return {
        "slug": entry.slug,
        "name": entry.name,
        "legal_entity": entry.legal_entity,
        "address": entry.address,
        "contact": entry.contact,
        "purpose": entry.purpose,
        "description": entry.description,
        "data_categories": list(entry.data_categories),
        "countries": list(entry.countries),
        "transfer_mechanism": entry.transfer_mechanism,
        "website": entry.website,
        "applies_to": {"all_customers": not entry.feature, "feature": entry.feature or None},
        "lei": entry.lei or None,
        "euid": entry.euid or None,
        "latin_name": entry.latin_name or None,
        "hq_country": entry.hq_country or None,
        "ultimate_parent": ({"name": entry.parent_name, "lei": entry.parent_lei or None}
                            if entry.parent_name else None),
        "ict_service_type": entry.ict_service_type or None,
        "subprocessors": _chain(entry.chain),
    }


def _chain(links: tuple[Link, ...]) -> list[dict]:
    """The chain depth first; `parent` is the name of the link it works for, null for the entry."""
    return [{"name": link.name, "legal_entity": link.legal_entity, "country": link.country,
             "service": link.service, "ict_service_type": link.service_type or None,
             "lei": link.lei or None, "euid": link.euid or None, "rank": rank,
             "parent": link.parent or None} for link, rank in ordered(links)]


def _change_value(field: str, value):
    return _chain(value) if field == "chain" else value


def _entry_links(slug: str) -> dict:
    return {"url": _absolute("subprocessors.entry", slug=slug),
            "api_url": _absolute(".subprocessor", slug=slug)}


def _new_customers(terms: domain.NewCustomerTerms | None) -> dict | None:
    """A change that already applies to new customers: what it is, since when, and for whom later."""
    if terms is None:
        return None
    return {"action": terms.action, "since": _iso(terms.since),
            "existing_customers_from": _iso(terms.existing_from), "entry": _entry(terms.entry)}


def _listed(item: domain.Listed) -> dict:
    return {**_entry(item.entry), "added_at": _iso(item.added_at),
            "changed_at": _iso(item.changed_at), "new_customers": _new_customers(item.new_customers),
            **_entry_links(item.entry.slug)}


def _history_item(item: domain.HistoryItem, now: datetime) -> dict:
    event = item.event
    return {
        "action": event.action,
        "effective_at": _iso(event.effective_at),
        "scheduled": event.effective_at > now,
        "summary": event.summary,
        "changes": [{"field": c.field, "label": c.label, "old": _change_value(c.field, c.old),
                     "new": _change_value(c.field, c.new)} for c in item.changes],
    }


def _version_ref(document: Document, version: reading.PublicVersion) -> dict:
    return {
        "number": version.number,
        "effective_at": _iso(version.effective_at),
        "url": _absolute("documents.version", slug=document.slug, number=version.number),
        "api_url": _absolute(".document_version", slug=document.slug, number=version.number),
    }


def _new_customers_version(document: Document, version: reading.PublicVersion | None,
                           now: datetime) -> dict | None:
    if version is None:
        return None
    links = _version_ref(document, version)
    return {"number": version.number, "since": _iso(version.new_customers_at),
            "existing_customers_from": _iso(reading.effective_moment(version.change_set, now)),
            "url": links["url"], "api_url": links["api_url"]}


def _document(document: Document, versions: list[reading.PublicVersion], now: datetime) -> dict:
    current = reading.current_version(versions, now)
    return {
        "slug": document.slug,
        "title": document.title,
        "description": document.description,
        "current_version": _version_ref(document, current) if current else None,
        "upcoming_versions": [_version_ref(document, v) for v in versions
                              if not v.is_effective(now)],
        "new_customers_version": _new_customers_version(
            document, reading.new_customers_version(versions, now), now),
        "url": _absolute("documents.show", slug=document.slug),
        "api_url": _absolute(".document", slug=document.slug),
        "versions_url": _absolute(".document_versions", slug=document.slug),
    }


def _status(version: reading.PublicVersion, current: reading.PublicVersion | None,
            now: datetime) -> str:
    if not version.is_effective(now):
        return "upcoming"
    return "in_effect" if version is current else "superseded"


def _version(document: Document, version: reading.PublicVersion, status: str) -> dict:
    change_set = version.change_set
    return {
        "number": version.number,
        "summary": version.version.summary,
        "is_material": version.version.is_material,
        "status": status,
        "published_at": _iso(change_set.published_at),
        "effective_at": _iso(change_set.effective_at),
        "effective_new_customers_at": _iso(change_set.effective_new_customers_at),
        "url": _absolute("documents.version", slug=document.slug, number=version.number),
        "api_url": _absolute(".document_version", slug=document.slug, number=version.number),
    }


def _change_set(change_set: ChangeSet) -> dict:
    items = [
        {"kind": "document_version", "document": v.document.slug, "title": v.document.title,
         "number": v.number, "summary": v.summary, "is_material": v.is_material,
         "url": _absolute("documents.version", slug=v.document.slug, number=v.number),
         "api_url": _absolute(".document_version", slug=v.document.slug, number=v.number)}
        for v in change_set.document_versions
    ] + [
        {"kind": "subprocessor", "slug": r.subprocessor.slug, "name": r.name,
         "action": r.action, "summary": r.summary, **_entry_links(r.subprocessor.slug)}
        for r in change_set.subprocessor_records
    ]
    return {
        "id": change_set.id,
        "title": change_set.title,
        "summary": change_set.summary,
        "is_material": change_set.is_material,
        "published_at": _iso(change_set.published_at),
        "effective_at": _iso(change_set.effective_at),
        "effective_new_customers_at": _iso(change_set.effective_new_customers_at),
        "objection_deadline_at": _iso(change_set.objection_deadline_at),
        "notice_completed_at": _iso(change_set.notice_completed_at),
        "planned_effective_at": _iso(change_set.planned_effective_at),
        "items": items,
    }


# Sub-processors

@bp.get("/subprocessors")
@cached
def subprocessors():
    rows, _query, facets, as_of, at = listing()
    _refuse_unknown_filters(facets)
    page, meta, links = _paginate(rows)
    moment = at if as_of else content_last_modified()
    return jsonify(data=[_listed(item) for item in page], meta={"as_of": _iso(moment), **meta},
                   links=links)


@bp.get("/subprocessors/changes")
@cached
def subprocessor_changes():
    since = params.iso_timestamp("since", required=True)
    now = now_utc()
    # Scheduled changes are always included, so a client polling with `since` sees what is coming.
    chosen = domain.changes_after(reading.subprocessor_events(db.session), min(since, now))
    page, meta, links = _paginate(chosen)
    data = [{**_history_item(item, now),
             "subprocessor": {**_entry(item.event.entry), **_entry_links(item.event.slug)}}
            for item in page]
    return jsonify(data=data, meta={"as_of": _iso(content_last_modified()), **meta}, links=links)


@bp.get("/subprocessors/<slug:slug>")
@cached
def subprocessor(slug: str):
    now = now_utc()
    events = entry_events(slug)
    where = domain.standing(events, now)
    shown = where.listed
    data = {
        **_entry(where.entry),
        "status": where.status,
        "added_at": _iso(shown.added_at) if shown else None,
        "changed_at": _iso(shown.changed_at) if shown else None,
        "removed_at": _iso(where.latest.effective_at) if where.status == "removed" else None,
        "new_customers": _new_customers(where.new_customers),
        **_entry_links(slug),
        "history": [_history_item(item, now) for item in domain.history(events)],
    }
    return jsonify(data=data)


@bp.get("/exports/dora")
@cached
def dora_export():
    """B_05.01 and B_05.02 as CSV files in a zip, for a financial customer's register of information."""
    rows, _query, facets, as_of, at = listing()
    _refuse_unknown_filters(facets)
    # The register is the existing customer's: what applies to new customers only is left out.
    entries = [item.entry for item in rows if not item.is_for_new_customers_only]
    out = io.BytesIO()
    # A fixed timestamp: the same list gives the same bytes, so the ETag holds.
    stamp = (1980, 1, 1, 0, 0, 0)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, columns, table in (("b_05.01.csv", dora.B_05_01_COLUMNS, dora.b_05_01(entries)),
                                     ("b_05.02.csv", dora.B_05_02_COLUMNS, dora.b_05_02(entries))):
            archive.writestr(zipfile.ZipInfo(name, stamp), _csv(columns, table))
        archive.writestr(zipfile.ZipInfo("README_columns.txt", stamp), dora.README)
    name = f"dora-register-{(as_of or at.date()).isoformat()}.zip"
    return Response(out.getvalue(), content_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return text.getvalue()


# Documents

@bp.get("/documents")
@cached
def documents():
    now = now_utc()
    return jsonify(data=[_document(d, reading.versions(db.session, d), now)
                         for d in reading.documents(db.session)])


@bp.get("/documents/<slug:slug>")
@cached
def document(slug: str):
    now = now_utc()
    doc, versions = document_and_versions(slug)
    policy = doc.notice_policy
    notice_policy = {"length": policy.length, "unit": policy.unit,
                     "calendars": list(policy.calendars), "timezone": policy.timezone,
                     "objection_days": policy.objection_days}
    return jsonify(data={**_document(doc, versions, now), "notice_policy": notice_policy})


@bp.get("/documents/<slug:slug>/versions")
@cached
def document_versions(slug: str):
    now = now_utc()
    doc, versions = document_and_versions(slug)
    current = reading.current_version(versions, now)
    page, meta, links = _paginate(versions)
    return jsonify(data=[_version(doc, v, _status(v, current, now)) for v in page],
                   meta={"as_of": _iso(content_last_modified()), **meta}, links=links)


@bp.get("/documents/<slug:slug>/versions/<int:number>")
@cached
def document_version(slug: str, number: int):
    now = now_utc()
    doc, versions = document_and_versions(slug)
    chosen = next((v for v in versions if v.number == number), None)
    if chosen is None:
        abort(404, description=f"This document has no version {number}.")
    status = _status(chosen, reading.current_version(versions, now), now)
    return jsonify(data={**_version(doc, chosen, status), "markdown": chosen.version.source_md,
                         "html": chosen.version.html, "headings": chosen.version.headings})


# Change sets and the description of this API

@bp.get("/changes/upcoming")
@cached
def upcoming_changes():
    return jsonify(data=[_change_set(c)
                         for c in reading.upcoming_change_sets(db.session, now_utc())])


@bp.get("/openapi.json")
@cached
def openapi_document():
    return jsonify(openapi.document(_choices()))
