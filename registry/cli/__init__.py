"""Flask command groups, one module each: demo, users, audit, registry, notices, subscribers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from registry.cli import audit, demo, notices, registry, subscribers, users

    for group in (demo.demo_cli, users.users_cli, audit.audit_cli, registry.registry_cli,
                  notices.notices_cli, subscribers.subscribers_cli):
        app.cli.add_command(group)
