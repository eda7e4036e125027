"""The home page and the upcoming changes."""

from __future__ import annotations

from flask import Blueprint, render_template

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import notices, reading
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
    now = now_utc()
    withdrawn = notices.withdrawn_change_sets(db.session, now)
    # A withdrawn change keeps its line where it was announced, saying it was withdrawn and why.
    change_sets = sorted([*reading.recent_change_sets(db.session, limit=200), *withdrawn],
                         key=lambda c: (c.published_at, c.id), reverse=True)
    return render_template(
        "public/changes.html", change_sets=change_sets, now=now,
        withdrawal_reasons=notices.withdrawal_reasons(db.session, [c.id for c in withdrawn]),
    )
