"""The worker's half of the SendGrid Event Webhook: applies the stored batches, one transaction each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import WebhookBatch
from registry.services import provider_events

log = logging.getLogger(__name__)

# Batches per transaction: the statements of applying one cost about as much as for several.
GROUP = 20


def apply_stored_batches(session: Session, *, clock: Callable[[], datetime] = now_utc,
                         group: int = GROUP) -> int:
    """Apply every batch stored before this call, oldest first; returns how many were applied.

    A few batches are claimed, applied and marked applied in one transaction, so a worker that dies
    mid-way leaves them as they were, to be applied whole by the next one. When a group fails, its
    batches are tried one per transaction, so that only the bad one is set aside. Batches posted
    meanwhile wait for the next call, so that a steady stream of events never holds up the sending.
    """
    up_to = session.scalar(select(func.max(WebhookBatch.id)).where(WebhookBatch.applied_at.is_(None)))
    session.commit()
    applied = 0
    while up_to is not None:
        batches = provider_events.claim_batches(session, now=clock(), up_to=up_to, limit=group)
        if not batches:
            session.commit()
            break
        ids = [b.id for b in batches]
        try:
            provider_events.apply_batches(session, batches, now=clock())
            session.commit()
        except Exception as error:  # one bad batch, or a deadlock, must not stop the mail
            session.rollback()
            if len(ids) > 1:
                group = 1
                continue
            _record_failure(session, ids[0], error)
            continue
        applied += len(ids)
    return applied


def _record_failure(session: Session, batch_id: int, error: Exception) -> None:
    """Keep the batch (its body is never lost) with the error; it is tried again a few times."""
    log.exception("webhook batch %s could not be applied", batch_id)
    reason = f"{type(error).__name__}: {error}"[:2000]
    session.execute(update(WebhookBatch).where(WebhookBatch.id == batch_id)
                    .values(attempts=WebhookBatch.attempts + 1, error=reason))
    session.commit()
