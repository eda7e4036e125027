"""Append rows to the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import AuditEntry

GENESIS = "0" * 64


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, object_type: str,
               object_id: str, before: dict | None, after: dict | None) -> str:
    payload = json.dumps(
        [prev_hash, at.isoformat(), actor, action, object_type, object_id, before, after],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, object_type: str, object_id: object,
           before: dict | None = None, after: dict | None = None, actor_id: int | None = None,
           at: datetime | None = None) -> AuditEntry:
    at = at or now_utc()
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    entry = AuditEntry(
        at=at, actor=actor, actor_id=actor_id, action=action, object_type=object_type,
        object_id=str(object_id), before=before, after=after, prev_hash=prev,
        hash=entry_hash(prev, at, actor, action, object_type, str(object_id), before, after),
    )
    session.add(entry)
    session.flush()
    return entry
