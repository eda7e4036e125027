"""flask notices ..."""

from __future__ import annotations

from flask.cli import AppGroup

notices_cli = AppGroup("notices")
