"""The legal staff workspace: dashboard, change sets, notice policies, audit log."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
