"""The append-only audit log (each row carries the hash of the one before it) and refusal counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(60))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class RefusalWindow(db.Model):
    """Refused sign-in attempts under one limit (an address, an account, or both) in one fixed window.

    A flood of refused attempts becomes one counter here and two audit rows (the first refusal, and
    a summary once the window is over) instead of one audit row per attempt.
    """

    __tablename__ = "refusal_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of (kind, scope, the scope's parts, window start): the upsert's conflict target.
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    # The limit that refused: address, account_address or account (services.audit.REFUSAL_SCOPES).
    scope: Mapped[str] = mapped_column(String(20))
    # The window's first address and account name; the other refusals may have come with others.
    ip: Mapped[str] = mapped_column(String(64))
    # What the client typed, cut short: not an account proven to exist, unless user_id is set.
    claimed_account: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the summary audit row was written; open windows are found by this index.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
