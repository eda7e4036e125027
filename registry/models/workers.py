"""What the mail worker records about itself: its heartbeat, and the days it ran the approvers' digest."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.extensions import db
from registry.models.types import UTCDateTime


class WorkerBeat(db.Model):
    """The mail worker's last sign of life, one row per worker process: the dashboard reads it."""

    __tablename__ = "worker_beats"

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboxDigest(db.Model):
    """One row per legal-zone day on which the approvers' daily digest was considered: at most one a day,
    whichever worker gets there first (the primary key refuses the second)."""

    __tablename__ = "inbox_digests"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What waited when it ran; 0: nothing did, and no mail went out.
    items: Mapped[int] = mapped_column(default=0)
