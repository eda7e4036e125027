"""One row that changes whenever public content changes, so cached pages know when to re-render."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class SiteState(db.Model):
    __tablename__ = "site_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
