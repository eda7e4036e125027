"""Staff: search subscribers, their deliveries, CSV import of contacts."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("subscribers", __name__, url_prefix="/admin/subscribers")
