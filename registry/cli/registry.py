"""flask registry ..."""

from __future__ import annotations

from flask.cli import AppGroup

registry_cli = AppGroup("registry")
