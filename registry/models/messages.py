"""The message store: every distinct message exactly as handed to the provider, addressed by its SHA-256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class MessageBody(db.Model):
    """Subject, text and HTML of one message before the per-recipient substitutions.

    The key is notify.messages.body_sha256 of the three parts, so the same message is stored once
    however many requests, workers or notices send it; each request (send_attempts) names the one it
    carried and keeps its recipients' own values, from which the exact mail a recipient got is rebuilt.
    """

    __tablename__ = "message_bodies"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
