"""The public sub-processor list, each entry's history, the list as of a date and comparisons."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, render_template, request
from werkzeug.exceptions import BadRequest

from registry.domain import subprocessors as domain
from registry.domain.chain import chain_text
from registry.domain.clock import end_of_day, now_utc
from registry.domain.spreadsheet import UTF8_BOM, moment_cells, safe_cell
from registry.extensions import db
from registry.services import reading
from registry.web import params
from registry.web.caching import cached

bp = Blueprint("subprocessors", __name__, url_prefix="/subprocessors")

SORT_LABELS = {"name": "Name", "purpose": "Purpose", "added": "Recently added",
               "changed": "Recently changed"}
# The query parameters of the list, its CSV and its API: links repeat these and nothing else, so
# that `?x=123` neither leaks into a link nor makes a page of its own in the page cache.
LIST_PARAMS = ("q", "purpose", "country", "mechanism", "sort", "as_of", "announced")


def list_args() -> dict[str, str]:
    """The list parameters of this request that have a value, to repeat in a link (as sent: the caller
    leaves out those that could not be read)."""
    return {name: value for name in LIST_PARAMS if (value := request.args.get(name, "").strip())}


ANNOUNCED_LABELS = {"show": "Show announced changes", "hide": "Only what applies today"}
T = TypeVar("T")


@bp.app_template_filter("search_words")
def search_words(entry: domain.Entry) -> str:
    """The words the list's script searches a row by: the server's own words, already folded."""
    return " ".join(dict.fromkeys(domain.search_words(entry)))


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


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["REGISTRY"].legal_timezone)


def _moment(day: date | None, now: datetime) -> datetime:
    return end_of_day(day, current_app.config["REGISTRY"].legal_timezone) if day else now


class FilterErrors(dict[str, str]):
    """The list page's own filters that could not be read, by field: shown beside each field.

    The CSV and the API have no form to show them in; they answer 400 with the message instead.
    """

    def read(self, name: str, parse: Callable[[str], T], default: T) -> T:
        try:
            return parse(name)
        except BadRequest as error:
            self[name] = error.description or "This value cannot be read."
            return default


def list_query(errors: FilterErrors | None = None, *, announced: bool = False) -> domain.ListQuery:
    """The query the request asks for; `announced`: the page's and the CSV's announced filter is
    read too (the API has none: it lists what is in effect)."""
    read = errors.read if errors is not None else (lambda name, parse, _default: parse(name))
    return domain.ListQuery(
        q=read("q", params.text, ""),
        # A value no entry has is a filter that matches nothing, as a client asking "anything in
        # Brazil?" expects, not an error.
        purpose=read("purpose", params.text, ""),
        country=read("country", params.country, ""),
        mechanism=read("mechanism", params.text, ""),
        sort=read("sort", lambda name: params.choice(name, SORT_LABELS, default="name"), "name"),
        announced=announced and read("announced", lambda name: params.choice(
            name, ANNOUNCED_LABELS, default="show"), "show") == "show",
    )


def listing(errors: FilterErrors | None = None, *, announced: bool = False
            ) -> tuple[list[domain.Listed], domain.ListQuery, Facets, date | None, datetime]:
    """The filtered list the request asks for; shared by the page, the CSV and the API.

    With `errors`, a filter that cannot be read is noted there and left out instead of a 400.
    With `announced`, the `announced` filter applies: changes announced for later are listed too
    (the API lists only what is in effect, with what already applies to new customers).
    """
    now = now_utc()
    events = reading.subprocessor_events(db.session)
    facets = facets_of(events)
    as_of = errors.read("as_of", params.iso_date, None) if errors is not None else params.iso_date("as_of")
    query = list_query(errors, announced=announced)
    at = _moment(as_of, now)
    if not announced:
        items = domain.listing_at(events, at)
    elif query.announced:
        items = domain.listing_with_announced(events, at)
    else:
        items = domain.in_effect_for_everyone(domain.listing_at(events, at))
    return domain.select(items, query), query, facets, as_of, at


@bp.get("/")
@cached
def index():
    errors = FilterErrors()
    rows, query, facets, as_of, at = listing(errors, announced=True)
    page = render_template("subprocessors/index.html", rows=rows, query=query, facets=facets,
                           as_of=as_of, at=at, sorts=SORT_LABELS, announced_labels=ANNOUNCED_LABELS,
                           errors=errors, raw=request.args,
                           # The CSV of what is shown: without the filters that could not be read.
                           csv_args={k: v for k, v in list_args().items() if k not in errors},
                           today=now_utc().astimezone(_zone()).date(),
                           now=now_utc())
    # The page, with each unreadable filter's message beside it, is still a refused request.
    return (page, 400) if errors else page


# Each moment is two columns: the exact UTC timestamp (`…_at`) and the day it falls on in the legal
# time zone (`…_local_date`), the day the pages show.
CSV_COLUMNS = ["slug", "name", "legal_entity", "address", "contact", "purpose", "description",
               "data_categories", "countries", "transfer_mechanism", "website", "applies_to",
               "added_at", "added_local_date", "changed_at", "changed_local_date",
               "new_customers_change", "new_customers_since", "new_customers_since_local_date",
               "existing_customers_from", "existing_customers_from_local_date",
               "announced_change", "announced_effective_at", "announced_effective_local_date",
               "lei", "euid", "hq_country", "ict_service_type", "subprocessors"]


@bp.get("/export.csv")
@cached
def export_csv():
    bom = params.choice("bom", ("0", "1"), default="0") == "1"
    rows, _query, _facets, as_of, at = listing(announced=True)
    zone = _zone()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in rows:
        e = item.entry
        terms = item.new_customers
        announced = item.announced
        writer.writerow([safe_cell(str(v)) for v in (
            e.slug, e.name, e.legal_entity, e.address, e.contact, e.purpose, e.description,
            "; ".join(e.data_categories), " ".join(e.countries), e.transfer_mechanism, e.website,
            e.feature or "All customers",
            *moment_cells(item.added_at, zone), *moment_cells(item.changed_at, zone),
            terms.action if terms else "",
            *moment_cells(_known(terms.since) if terms else None, zone),
            *moment_cells(_known(terms.existing_from) if terms else None, zone),
            announced.action if announced else "",
            *moment_cells(_known(announced.effective_at) if announced else None, zone),
            e.lei, e.euid, e.hq_country, e.ict_service_type, chain_text(e.chain) if e.chain else "",
        )])
    name = f"subprocessors-{(as_of or at.date()).isoformat()}.csv"
    return Response((UTF8_BOM if bom else "") + out.getvalue(),
                    content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _known(moment: datetime) -> datetime | None:
    """A moment for a spreadsheet; a date that waits for a notice still going out is left empty."""
    return None if moment == reading.NOT_YET else moment


@bp.get("/compare")
@cached
def compare():
    now = now_utc()
    today = now.astimezone(_zone()).date()
    errors = FilterErrors()
    start = errors.read("from", params.iso_date, None) or today - timedelta(days=90)
    end = errors.read("to", params.iso_date, None) or today
    if not errors and start > end:
        errors["from"] = "'from' must be on or before 'to'."
    if errors:
        start, end = today - timedelta(days=90), today
    events = reading.subprocessor_events(db.session)
    diff = domain.compare_states(domain.state_at(events, _moment(start, now)),
                                 domain.state_at(events, _moment(end, now)))
    page = render_template("subprocessors/compare.html", diff=diff, start=start, end=end,
                           errors=errors, raw=request.args, today=today, now=now)
    return (page, 400) if errors else page


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
