"""Staff: browse, filter and export the append-only audit log."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")
