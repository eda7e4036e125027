"""The home page and the upcoming changes."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, render_template

from registry.domain import subprocessors as domain
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import notices, reading
from registry.web.caching import cached

bp = Blueprint("public", __name__)

RECENT = 8  # changes on the home page


def current_names(now: datetime) -> dict[str, str]:
    """Sub-processor names as they are now, for change lines written under an older name."""
    return domain.current_names(reading.subprocessor_events(db.session), now)


@bp.app_template_filter("possessive")
def possessive(name: str) -> str:
    """ "Ferncastle Teamworks' notices", "Acme's notices"."""
    return f"{name}'" if name.endswith(("s", "S")) else f"{name}'s"


@bp.get("/")
@cached
def home():
    now = now_utc()
    upcoming = reading.upcoming_change_sets(db.session, now)
    # Only changes in effect: an announced one is under "Coming up", not "Recent changes".
    latest = reading.recent_change_sets(db.session, limit=RECENT + len(upcoming))
    return render_template(
        "public/home.html",
        upcoming=upcoming,
        recent=[c for c in latest if c.effective_at <= now][:RECENT],
        documents=reading.documents(db.session),
        names=current_names(now),
        now=now,
    )


@bp.get("/upcoming")
@cached
def upcoming():
    now = now_utc()
    return render_template(
        "public/upcoming.html", change_sets=reading.upcoming_change_sets(db.session, now),
        names=current_names(now), now=now,
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
        "public/changes.html", change_sets=change_sets, now=now, names=current_names(now),
        withdrawal_reasons=notices.withdrawal_reasons(db.session, [c.id for c in withdrawn]),
    )
