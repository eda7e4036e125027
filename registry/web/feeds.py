"""RSS 2.0 and Atom feeds of notices, built with feedgen: everything, each document, sub-processors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    ChangeSet,
    ChangeStatus,
    Document,
    DocumentVersion,
    Notice,
    SubProcessorRecord,
)
from registry.notify import messages
from registry.services import notices, reading
from registry.web.caching import cached, content_last_modified

bp = Blueprint("feeds", __name__, url_prefix="/feeds")

CONTENT_TYPES = {"atom": "application/atom+xml; charset=utf-8",
                 "rss": "application/rss+xml; charset=utf-8"}
MAX_ENTRIES = 100
ACTIONS = {"add": "Added", "change": "Changed", "remove": "Removed"}
# Everything XML 1.0 forbids: C0 controls other than tab and newlines, surrogates, U+FFFE/U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str | None) -> str:
    """Text that any XML parser accepts; escaping itself is lxml's job."""
    return _NOT_XML.sub("", value or "")


def one_line(value: str | None) -> str:
    return " ".join(xml_text(value).split())


def _absolute(path: str) -> str:
    return current_app.config["REGISTRY"].base_url + path


def _tag(suffix: str) -> str:
    """A tag: URI (RFC 4151) that never changes for the same thing, whatever the URLs become."""
    host = urlsplit(current_app.config["REGISTRY"].base_url).hostname or "localhost"
    return f"tag:{host},2025:{suffix}"


def _when(value: datetime, zone: ZoneInfo) -> Markup:
    local = value.astimezone(zone)
    utc = value.astimezone(UTC)
    return escape(f"{local.day} {local:%B %Y, %H:%M %Z} ({utc:%Y-%m-%d %H:%M} UTC)")


def _public_change_sets(now: datetime, *, document: Document | None = None,
                        subprocessors: bool = False, withdrawn: bool = False) -> list[ChangeSet]:
    """An entry appears when its notice starts (published_at), not when the change takes effect.

    With `withdrawn`: the announced changes withdrawn since, whose withdrawal is an entry of its own.
    """
    shown = ((ChangeSet.published_at.is_not(None), ChangeSet.status == ChangeStatus.WITHDRAWN,
              ChangeSet.withdrawn_at <= now) if withdrawn else reading.PUBLIC)
    query = (
        select(ChangeSet).where(*shown, ChangeSet.published_at <= now)
        .options(joinedload(ChangeSet.document_versions).joinedload(DocumentVersion.document),
                 joinedload(ChangeSet.subprocessor_records).joinedload(SubProcessorRecord.subprocessor))
        .order_by(ChangeSet.published_at.desc(), ChangeSet.id.desc())
        .limit(MAX_ENTRIES)
    )
    if document is not None:
        query = query.where(ChangeSet.id.in_(
            select(DocumentVersion.change_set_id).where(DocumentVersion.document_id == document.id)))
    if subprocessors:
        query = query.where(ChangeSet.id.in_(select(SubProcessorRecord.change_set_id)))
    return list(db.session.scalars(query).unique())


@dataclass(frozen=True)
class _Entry:
    """One feed entry: a change announced, its date moved, or its withdrawal."""

    at: datetime
    kind: str
    change_set: ChangeSet
    notice: Notice | None = None
    reason: str = ""


def _move_html(entry: _Entry, zone: ZoneInfo) -> str:
    move, change_set = entry.notice, entry.change_set
    dates = [Markup("<li>Notice given: {}</li>").format(_when(change_set.published_at, zone)),
             Markup("<li>Now takes effect: {}</li>").format(_when(move.moved_to_at, zone)),
             Markup("<li>Was to take effect: {}</li>").format(_when(move.moved_from_at, zone))]
    parts = [Markup("<p>The effective date of this change moved{}.</p>").format(
        Markup(": {}").format(xml_text(move.reason)) if move.reason else ""),
        Markup("<ul>{}</ul>").format(Markup("").join(dates)), _how_to_object(change_set)]
    return str(Markup("").join(parts))


def _how_to_object(change_set: ChangeSet) -> Markup:
    """The deadline and the form's address, worded where every page and notice words them."""
    deadline = change_set.objection_deadline_at if change_set.status != ChangeStatus.WITHDRAWN else None
    # render_template autoescapes: its result is safe markup.
    return Markup(render_template(  # noqa: S704
        "objections/_how_to_object.html", objection_deadline_at=deadline,
        objection_url=url_for("objections.new", change_set_id=change_set.id, _external=True)))


def _withdrawal_html(entry: _Entry, zone: ZoneInfo) -> str:
    change_set = entry.change_set
    parts = [Markup("<p>We withdrew this change: it will not take effect, and nothing changes.{}</p>").format(
        Markup(" Why: {}").format(xml_text(entry.reason)) if entry.reason else ""),
        Markup("<ul><li>Notice given: {}</li><li>Withdrawn: {}</li></ul>").format(
            _when(change_set.published_at, zone), _when(change_set.withdrawn_at, zone))]
    return str(Markup("").join(parts))


def _entries(change_sets: list[ChangeSet], withdrawn: list[ChangeSet]) -> list[_Entry]:
    """Each announcement, each date move of an announced change, each withdrawal; newest first."""
    entries = [_Entry(c.published_at, "announced", c) for c in change_sets]
    ids = [c.id for c in change_sets]
    by_id = {c.id: c for c in change_sets}
    if ids:
        moves = db.session.scalars(select(Notice).where(Notice.change_set_id.in_(ids),
                                                        Notice.kind == "date_moved"))
        entries += [_Entry(m.feed_published_at or m.created_at, "moved", by_id[m.change_set_id], m)
                    for m in moves]
    if withdrawn:
        reasons = notices.withdrawal_reasons(db.session, [c.id for c in withdrawn])
        entries += [_Entry(c.withdrawn_at, "withdrawn", c, reason=reasons.get(c.id, "")) for c in withdrawn]
    entries.sort(key=lambda e: (e.at, e.change_set.id, e.notice.id if e.notice else 0), reverse=True)
    return entries[:MAX_ENTRIES]


def _entry_html(change_set: ChangeSet, zone: ZoneInfo, document: Document | None) -> str:
    parts = [Markup("<p>{}</p>").format(xml_text(change_set.summary))] if change_set.summary else []
    dates = [Markup("<li>Notice given: {}</li>").format(_when(change_set.published_at, zone))]
    if change_set.effective_at:
        new_customers = change_set.effective_new_customers_at
        if new_customers and new_customers != change_set.effective_at:
            dates.append(Markup("<li>Effective for new customers: {}</li>").format(
                _when(new_customers, zone)))
            dates.append(Markup("<li>Effective for existing customers: {}</li>").format(
                _when(change_set.effective_at, zone)))
        else:
            dates.append(Markup("<li>Effective: {}</li>").format(_when(change_set.effective_at, zone)))
    if change_set.effective_moved_at and change_set.planned_effective_at:
        dates.append(Markup("<li>Date moved: first announced for {}; moved on {} so that the full "
                            "notice period passes after the notice went out.</li>").format(
            _when(change_set.planned_effective_at, zone), _when(change_set.effective_moved_at, zone)))
    parts.append(Markup("<ul>{}</ul>").format(Markup("").join(dates)))
    parts.append(_how_to_object(change_set))

    items = []
    for version in change_set.document_versions:
        if version.number is None or (document is not None and version.document_id != document.id):
            continue
        page = _absolute(url_for("documents.version", slug=version.document.slug, number=version.number))
        item = Markup('<a href="{}">{}, version {}</a>').format(
            page, xml_text(version.document.title), version.number)
        if (before := reading.predecessor(db.session, version)) is not None:
            redline = _absolute(url_for("documents.compare", slug=version.document.slug,
                                        to=version.number, **{"from": before.number}))
            item += Markup(' (<a href="{}">redline</a>)').format(redline)
        if version.summary:
            item += Markup(": {}").format(xml_text(version.summary))
        items.append(Markup("<li>{}</li>").format(item))
    if document is None:
        for record in change_set.subprocessor_records:
            page = _absolute(url_for("subprocessors.entry", slug=record.subprocessor.slug))
            # The fields a change alters, worded as the notice words them (the chain as what it added).
            changed = [Markup("<li>{}: {} → {}</li>").format(
                xml_text(c["label"]), xml_text(c["old"]), xml_text(c["new"]))
                for c in messages.record_details(db.session, record)["changes"]]
            items.append(Markup('<li>{} sub-processor: <a href="{}">{}</a>{}{}</li>').format(
                ACTIONS.get(record.action, record.action), page, xml_text(record.name),
                Markup(" ({})").format(xml_text(record.purpose)) if record.purpose else "",
                Markup("<ul>{}</ul>").format(Markup("").join(changed)) if changed else ""))
    if items:
        parts.append(Markup("<ul>{}</ul>").format(Markup("").join(items)))
    return str(Markup("").join(parts))


def _item_links(change_set: ChangeSet, document: Document | None) -> list[str]:
    """A link to each thing the change set changes that this feed follows: a document version (its
    redline when it has a predecessor) or a sub-processor's entry."""
    links = []
    for version in change_set.document_versions:
        if version.number and (document is None or version.document_id == document.id):
            if (before := reading.predecessor(db.session, version)) is not None:
                links.append(_absolute(url_for("documents.compare", slug=version.document.slug,
                                               to=version.number, **{"from": before.number})))
            else:
                links.append(_absolute(url_for("documents.version", slug=version.document.slug,
                                               number=version.number)))
    if document is None:
        links += [_absolute(url_for("subprocessors.entry", slug=r.subprocessor.slug))
                  for r in change_set.subprocessor_records]
    return links


def _change_log_link(change_set: ChangeSet) -> str:
    return _absolute(url_for("public.changes", _anchor=f"change-{change_set.id}"))


def _entry_link(change_set: ChangeSet, items: list[str]) -> str:
    """The one thing changed, or, for a change of several things, its place in the change log, which
    lists them all (the entry's own text links each)."""
    return items[0] if len(items) == 1 else _change_log_link(change_set)


def _entry_updated(change_set: ChangeSet) -> datetime:
    return max(filter(None, (change_set.published_at, change_set.effective_moved_at)))


def _render(fmt: str, *, key: str, title: str, description: str, alternate: str,
            change_sets: list[ChangeSet], withdrawn: list[ChangeSet],
            document: Document | None = None) -> Response:
    settings = current_app.config["REGISTRY"]
    zone = ZoneInfo(settings.legal_timezone)
    company = one_line(settings.company_name)
    feed = FeedGenerator()
    feed.id(_tag(f"feeds/{key}"))
    feed.title(one_line(f"{company}: {title}"))
    feed.description(one_line(description))
    feed.author({"name": company})
    feed.language("en")
    # feedgen writes the last link as RSS's channel <link>: that must be the site's page, not the feed.
    feed.link(href=_absolute(request.path), rel="self")
    feed.link(href=_absolute(alternate), rel="alternate")
    # Fixed to the content, never to the render time, so every worker serves identical bytes.
    items = _entries(change_sets, withdrawn)
    updated = max([_entry_updated(cs) for cs in change_sets] + [item.at for item in items],
                  default=None) or content_last_modified()
    feed.updated(updated)
    feed.lastBuildDate(updated)
    for item in items:
        change_set = item.change_set
        entry = feed.add_entry(order="append")
        name = one_line(change_set.title) or f"Change {change_set.id}"
        if item.kind == "announced":
            guid, html = _tag(f"change-sets/{change_set.id}"), _entry_html(change_set, zone, document)
            title_text = name
            entry.updated(_entry_updated(change_set))
        elif item.kind == "moved":
            guid, html = _tag(f"change-sets/{change_set.id}/moves/{item.notice.id}"), _move_html(item, zone)
            title_text = f"Date moved: {name}"
            entry.updated(item.at)
        else:
            guid, html = _tag(f"change-sets/{change_set.id}/withdrawal"), _withdrawal_html(item, zone)
            title_text = f"Withdrawn: {name}"
            entry.updated(item.at)
        entry.id(guid)
        entry.guid(guid, permalink=False)
        entry.title(title_text)
        # One link an entry: feedgen writes every Atom entry link as rel="alternate" (it drops rel), and
        # RSS has one. The entry's text links each item.
        entry.link(href=_entry_link(change_set, _item_links(change_set, document))
                   if item.kind != "withdrawn" else _change_log_link(change_set))
        entry.published(item.at)
        entry.content(html, type="html")
    body = feed.atom_str(pretty=True) if fmt == "atom" else feed.rss_str(pretty=True)
    return Response(body, content_type=CONTENT_TYPES[fmt])


def _routes(path: str, endpoint: str | None = None):
    """One rule per format, so that building a URL needs no format argument to guess."""

    def register(view):
        for fmt in CONTENT_TYPES:
            bp.add_url_rule(f"{path}.{fmt}", endpoint or view.__name__, view, methods=["GET"],
                            defaults={"fmt": fmt})
        return view

    return register


@_routes("/all", endpoint="all")
@cached
def everything(fmt: str):
    return _render(fmt, key="all", title="changes to sub-processors and legal documents",
                   description="Every notice of a change to our sub-processors and legal documents.",
                   alternate=url_for("public.changes"), change_sets=_public_change_sets(now_utc()),
                   withdrawn=_public_change_sets(now_utc(), withdrawn=True))


@_routes("/subprocessors")
@cached
def subprocessors(fmt: str):
    return _render(fmt, key="subprocessors", title="sub-processor changes",
                   description="Every notice of a sub-processor being added, changed or removed.",
                   alternate=url_for("subprocessors.index"),
                   change_sets=_public_change_sets(now_utc(), subprocessors=True),
                   withdrawn=_public_change_sets(now_utc(), subprocessors=True, withdrawn=True))


@_routes("/documents/<slug:slug>")
@cached
def document(slug: str, fmt: str):
    doc = reading.document(db.session, slug)
    if doc is None:
        abort(404, description="There is no document at this address.")
    return _render(fmt, key=f"documents/{doc.slug}", title=f"changes to the {doc.title}",
                   description=f"Every notice of a new version of the {doc.title}.",
                   alternate=url_for("documents.show", slug=doc.slug),
                   change_sets=_public_change_sets(now_utc(), document=doc),
                   withdrawn=_public_change_sets(now_utc(), document=doc, withdrawn=True), document=doc)
