"""Queue a single email in the caller's transaction; the worker renders and sends it after commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import OutgoingMail


def queue(session: Session, *, to: str, template: str, context: dict,
          now: datetime | None = None) -> OutgoingMail:
    """`context` must be JSON: ids and strings, not rows, so the worker renders what was meant."""
    mail = OutgoingMail(to=to, template=template, context=context, created_at=now or now_utc())
    session.add(mail)
    session.flush()
    return mail
