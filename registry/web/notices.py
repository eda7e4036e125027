"""Staff: dispatch progress, proof of notice and its exports, the local mailbox."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("notices", __name__, url_prefix="/admin/notices")
