"""The home page and the upcoming changes."""

from __future__ import annotations

from flask import Blueprint, render_template

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import reading
from registry.web.caching import cached

bp = Blueprint("public", __name__)


@bp.get("/")
@cached
def home():
    now = now_utc()
    return render_template(
        "public/home.html",
        upcoming=reading.upcoming_change_sets(db.session, now),
        recent=reading.recent_change_sets(db.session, limit=8),
        documents=reading.documents(db.session),
        now=now,
    )


@bp.get("/upcoming")
@cached
def upcoming():
    now = now_utc()
    return render_template(
        "public/upcoming.html", change_sets=reading.upcoming_change_sets(db.session, now), now=now
    )


@bp.get("/changes")
@cached
def changes():
    return render_template(
        "public/changes.html", change_sets=reading.recent_change_sets(db.session, limit=200),
        now=now_utc(),
    )
