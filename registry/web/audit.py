"""Staff: browse, filter and export the append-only audit log."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context, url_for
from sqlalchemy import func, select

from registry.domain.clock import end_of_day, start_of_day
from registry.domain.spreadsheet import safe_cell
from registry.extensions import db
from registry.services import audit
from registry.web.access import permission_required

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")

PER_PAGE = 50
FILTER_FIELDS = ("action", "actor", "object_type", "object_id", "from", "to")
MAX_FILTER = 320
CSV_COLUMNS = ("id", "at", "actor", "actor_id", "action", "object_type", "object_id", "before", "after",
               "prev_hash", "hash")


def _parse_filters(args) -> tuple[audit.Filters, dict[str, str], dict[str, str]]:
    """(filters, the raw values to show again, problems by field)."""
    raw = {name: args.get(name, "")[:MAX_FILTER].strip() for name in FILTER_FIELDS}
    errors: dict[str, str] = {}
    for name in ("action", "actor", "object_type", "object_id"):
        if "\x00" in raw[name]:
            errors[name] = "This field cannot contain NUL characters."
            raw[name] = raw[name].replace("\x00", "")
    zone = current_app.config["REGISTRY"].legal_timezone
    bounds = {}
    for name in ("from", "to"):
        if not raw[name]:
            continue
        try:
            day = date.fromisoformat(raw[name])
        except ValueError:
            errors[name] = f"{raw[name][:40]!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-26."
            continue
        bounds[name] = start_of_day(day, zone) if name == "from" else end_of_day(day, zone)
    if "from" in bounds and "to" in bounds and bounds["from"] > bounds["to"]:
        errors["to"] = "The end date is before the start date."
    filters = audit.Filters(action=raw["action"], actor=raw["actor"], object_type=raw["object_type"],
                            object_id=raw["object_id"], since=bounds.get("from"), until=bounds.get("to"))
    return filters, raw, errors


def _page_number() -> int | None:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) >= 1 else None


@bp.get("/")
@permission_required("audit")
def index():
    filters, raw, errors = _parse_filters(request.args)
    page = _page_number()
    if page is None:
        errors["page"] = "The page must be a whole number from 1."
    if errors:
        return render_template("audit/index.html", entries=[], raw=raw, errors=errors, page=1, pages=1,
                               total=0, active={}), 400
    query = audit.search(filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    pages = max(1, -(-total // PER_PAGE))
    entries = db.session.scalars(query.offset((min(page, pages) - 1) * PER_PAGE).limit(PER_PAGE)).all()
    active = {name: value for name, value in raw.items() if value}
    return render_template("audit/index.html", entries=entries, raw=raw, errors={}, page=min(page, pages),
                           pages=pages, total=total, active=active)


def _cell(value: object) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    if value is None or isinstance(value, str):
        return safe_cell(value or "")
    return safe_cell(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _csv_rows(filters: audit.Filters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        data = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return data

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for entry in db.session.scalars(audit.search(filters).execution_options(yield_per=500)):
        writer.writerow([entry.id, entry.at.isoformat(), *(_cell(value) for value in (
            entry.actor, entry.actor_id, entry.action, entry.object_type, entry.object_id, entry.before,
            entry.after)), entry.prev_hash, entry.hash])
        yield flush()


@bp.get("/export.csv")
@permission_required("audit")
def export_csv():
    filters, _raw, errors = _parse_filters(request.args)
    if errors:
        message = " ".join(f"{name}: {problem}" for name, problem in errors.items())
        return Response(message + "\n", status=400, mimetype="text/plain")
    response = Response(stream_with_context(_csv_rows(filters)), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=audit-log.csv"
    return response


@bp.app_template_global()
def audit_page_url(page: int, **active) -> str:
    return url_for("audit.index", page=page, **active)
