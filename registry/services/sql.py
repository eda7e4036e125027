"""What differs between the two databases in the statements the services write."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def dialect_insert(session: Session):
    """The INSERT construct with ON CONFLICT for the session's database (PostgreSQL or SQLite)."""
    name = session.get_bind().dialect.name
    return postgresql_insert if name == "postgresql" else sqlite_insert
