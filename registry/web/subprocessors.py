"""The public sub-processor list, each entry's history, the list as of a date and comparisons."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import Blueprint, Response, abort, current_app, render_template

from registry.domain import subprocessors as domain
from registry.domain.clock import end_of_day, now_utc
from registry.domain.spreadsheet import safe_cell
from registry.extensions import db
from registry.services import reading
from registry.web import params
from registry.web.caching import cached

bp = Blueprint("subprocessors", __name__, url_prefix="/subprocessors")

SORT_LABELS = {"name": "Name", "purpose": "Purpose", "added": "Recently added",
               "changed": "Recently changed"}


@dataclass(frozen=True)
class Facets:
    purposes: list[str]
    countries: list[str]
    mechanisms: list[str]


def facets_of(events: list[domain.Event]) -> Facets:
    return Facets(
        purposes=sorted({e.entry.purpose for e in events}),
        countries=sorted({c for e in events for c in e.entry.countries}),
        mechanisms=sorted({e.entry.transfer_mechanism for e in events}),
    )


def _moment(day: date | None, now: datetime) -> datetime:
    return end_of_day(day, current_app.config["REGISTRY"].legal_timezone) if day else now


def list_query(facets: Facets) -> domain.ListQuery:
    return domain.ListQuery(
        q=params.text("q"),
        # A value no entry has is a filter that matches nothing, as a client asking "anything in
        # Brazil?" expects, not an error.
        purpose=params.text("purpose"),
        country=params.country("country"),
        mechanism=params.text("mechanism"),
        sort=params.choice("sort", SORT_LABELS, default="name"),
    )


def listing() -> tuple[list[domain.Listed], domain.ListQuery, Facets, date | None, datetime]:
    """The filtered list the request asks for; shared by the page, the CSV and the API."""
    now = now_utc()
    events = reading.subprocessor_events(db.session)
    facets = facets_of(events)
    as_of = params.iso_date("as_of")
    query = list_query(facets)
    at = _moment(as_of, now)
    rows = domain.select(domain.listing_at(events, at), query)
    return rows, query, facets, as_of, at


@bp.get("/")
@cached
def index():
    rows, query, facets, as_of, at = listing()
    return render_template("subprocessors/index.html", rows=rows, query=query, facets=facets,
                           as_of=as_of, at=at, sorts=SORT_LABELS, now=now_utc())


CSV_COLUMNS = ["slug", "name", "legal_entity", "address", "contact", "purpose", "description",
               "data_categories", "countries", "transfer_mechanism", "website", "applies_to",
               "added_at", "changed_at", "new_customers_change", "new_customers_since",
               "existing_customers_from"]


@bp.get("/export.csv")
@cached
def export_csv():
    rows, _query, _facets, as_of, at = listing()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in rows:
        e = item.entry
        terms = item.new_customers
        writer.writerow([safe_cell(str(v)) for v in (
            e.slug, e.name, e.legal_entity, e.address, e.contact, e.purpose, e.description,
            "; ".join(e.data_categories), " ".join(e.countries), e.transfer_mechanism, e.website,
            e.feature or "All customers", item.added_at.isoformat(), item.changed_at.isoformat(),
            terms.action if terms else "", _iso(terms.since) if terms else "",
            _iso(terms.existing_from) if terms else "",
        )])
    name = f"subprocessors-{(as_of or at.date()).isoformat()}.csv"
    return Response(out.getvalue(), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _iso(moment: datetime) -> str:
    """A moment for a spreadsheet; a date that waits for a notice still going out is left empty."""
    return "" if moment == reading.NOT_YET else moment.isoformat()


@bp.get("/compare")
@cached
def compare():
    now = now_utc()
    today = now.date()
    start = params.iso_date("from") or today - timedelta(days=90)
    end = params.iso_date("to") or today
    if start > end:
        abort(400, description="'from' must be on or before 'to'.")
    events = reading.subprocessor_events(db.session)
    diff = domain.compare_states(domain.state_at(events, _moment(start, now)),
                                 domain.state_at(events, _moment(end, now)))
    return render_template("subprocessors/compare.html", diff=diff, start=start, end=end, now=now)


def entry_events(slug: str) -> list[domain.Event]:
    """One sub-processor's public events, or a 404; shared by the page and the API."""
    events = reading.subprocessor_events(db.session, slug)
    if not events:
        abort(404, description="There is no sub-processor at this address.")
    return events


@bp.get("/<slug:slug>")
@cached
def entry(slug: str):
    now = now_utc()
    events = entry_events(slug)
    return render_template("subprocessors/entry.html", items=domain.history(events),
                           where=domain.standing(events, now), now=now)
