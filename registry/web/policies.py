"""Admin: notice policies (length, unit, holiday calendars, legal time zone)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("policies", __name__, url_prefix="/admin/policies")
