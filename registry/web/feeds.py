"""RSS 2.0 and Atom feeds of notices, built with feedgen."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
