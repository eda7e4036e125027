"""Legal documents: the current version, the archive, and comparisons between versions."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, url_for

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Document
from registry.services import reading
from registry.web import params
from registry.web.caching import cached

bp = Blueprint("documents", __name__, url_prefix="/documents")

VIEWS = {"redline": "Redline", "side": "Side by side"}


def document_and_versions(slug: str) -> tuple[Document, list[reading.PublicVersion]]:
    """A document and its public versions, or a 404; shared by the pages and the API."""
    document = reading.document(db.session, slug)
    if document is None:
        abort(404, description="There is no document at this address.")
    return document, reading.versions(db.session, document)


def _version(versions: list[reading.PublicVersion], number: int, name: str = "version"):
    for version in versions:
        if version.number == number:
            return version
    abort(404, description=f"This document has no {name} {number}.")


@bp.get("/")
@cached
def index():
    now = now_utc()
    rows = []
    for document in reading.documents(db.session):
        versions = reading.versions(db.session, document)
        rows.append((document, reading.current_version(versions, now),
                     [v for v in versions if not v.is_effective(now)], len(versions)))
    return render_template("documents/index.html", rows=rows, now=now)


@bp.get("/<slug:slug>/")
@cached
def show(slug: str):
    now = now_utc()
    document, versions = document_and_versions(slug)
    current = reading.current_version(versions, now)
    if current is None:
        abort(404, description="This document has no version in effect yet.")
    upcoming = [v for v in versions if not v.is_effective(now)]
    return render_template("documents/show.html", document=document, version=current,
                           versions=versions, current=current, upcoming=upcoming, now=now)


@bp.get("/<slug:slug>/versions/")
@cached
def versions(slug: str):
    now = now_utc()
    document, versions = document_and_versions(slug)
    return render_template("documents/versions.html", document=document,
                           versions=list(reversed(versions)),
                           current=reading.current_version(versions, now), now=now)


@bp.get("/<slug:slug>/versions/<int:number>")
@cached
def version(slug: str, number: int):
    now = now_utc()
    document, versions = document_and_versions(slug)
    chosen = _version(versions, number)
    current = reading.current_version(versions, now)
    upcoming = [v for v in versions if not v.is_effective(now)]
    return render_template("documents/show.html", document=document, version=chosen,
                           versions=versions, current=current, upcoming=upcoming, now=now)


def _pair(slug: str):
    document, versions = document_and_versions(slug)
    if len(versions) < 2:
        abort(404, description="This document has only one version; there is nothing to compare.")
    return document, versions


@bp.get("/<slug:slug>/compare")
@cached
def compare(slug: str):
    now = now_utc()
    document, versions = _pair(slug)
    newest = versions[-1]
    new_number = params.positive_int("to", newest.number, maximum=10_000)
    # By default a version is compared with the one in force immediately before it.
    shown = next((v for v in versions if v.number == new_number), newest)
    old_number = params.positive_int("from", shown.previous_number or 1, maximum=10_000)
    view = params.choice("view", VIEWS, default="redline")
    if old_number == new_number:
        # Not an error a reader should meet as one: say so, and offer the comparisons there are.
        same = _version(versions, new_number)
        return render_template("documents/compare_same.html", document=document, version=same,
                               versions=versions, view=view)
    if old_number > new_number:
        return redirect(url_for(".compare", slug=slug, to=old_number, **{"from": new_number},
                                view=view))
    old, new = _version(versions, old_number), _version(versions, new_number)
    comparison = reading.comparison(db.session, old.version, new.version)
    if comparison is None:
        abort(404, description="This comparison is not available.")
    between = [v for v in versions if old.number < v.number <= new.number]
    return render_template("documents/compare.html", document=document, old=old, new=new,
                           comparison=comparison, between=between, versions=versions,
                           view=view, views=VIEWS, now=now)


@bp.get("/<slug:slug>/compare/<int:old_number>-<int:new_number>.diff")
@cached
def unified_diff(slug: str, old_number: int, new_number: int):
    _document, versions = _pair(slug)
    old, new = _version(versions, old_number), _version(versions, new_number)
    comparison = reading.comparison(db.session, old.version, new.version)
    if comparison is None:
        abort(404, description="Only an older version can be compared with a newer one.")
    name = f"{slug}-v{old_number}-v{new_number}.diff"
    return Response(comparison.unified_diff, content_type="text/x-diff; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
