"""Append rows to the hash-chained audit log, and check that chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import AuditEntry

GENESIS = "0" * 64
# Any constant shared by every writer: the transaction-level advisory lock that serialises appends.
ADVISORY_LOCK_KEY = 0x61756469  # "audi"

# Column sizes of AuditEntry: longer values are cut rather than refused, so auditing never fails.
_LIMITS = {"actor": 320, "action": 80, "object_type": 60, "object_id": 60}


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, object_type: str,
               object_id: str, before: dict | None, after: dict | None) -> str:
    payload = json.dumps(
        [prev_hash, at.isoformat(), actor, action, object_type, object_id, before, after],
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _clean(value: object, limit: int) -> str:
    # PostgreSQL refuses NUL in text; the chain must hash exactly what is stored.
    return str(value).replace("\x00", "\ufffd")[:limit]


def _as_stored(values: dict | None) -> dict | None:
    """The values as the JSON column gives them back (dates as strings, tuples as lists)."""
    if values is None:
        return None
    return json.loads(json.dumps(values, default=str).replace("\\u0000", "\\ufffd"))


def record(session: Session, *, actor: str, action: str, object_type: str, object_id: object,
           before: dict | None = None, after: dict | None = None, actor_id: int | None = None,
           at: datetime | None = None) -> AuditEntry:
    # The database keeps microseconds in UTC; hashing anything else could not be checked later.
    at = (at or now_utc()).astimezone(UTC)
    actor, action = _clean(actor, _LIMITS["actor"]), _clean(action, _LIMITS["action"])
    object_type = _clean(object_type, _LIMITS["object_type"])
    object_id = _clean(object_id, _LIMITS["object_id"])
    before, after = _as_stored(before), _as_stored(after)
    if session.get_bind().dialect.name == "postgresql":
        # Without it, two transactions could both read the same previous hash and fork the chain.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    entry = AuditEntry(
        at=at, actor=actor, actor_id=actor_id, action=action, object_type=object_type,
        object_id=object_id, before=before, after=after, prev_hash=prev,
        hash=entry_hash(prev, at, actor, action, object_type, object_id, before, after),
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    """ok, how many rows were checked, and the first broken row with what is wrong with it."""

    ok: bool
    count: int
    broken_id: int | None = None
    problem: str = ""


def verify(session: Session, *, batch: int = 1000) -> VerifyResult:
    """Walk the chain in id order: each row must link to the one before and hash to its own content."""
    prev, count, last_id = GENESIS, 0, 0
    # Plain rows, not ORM objects: a long walk fills no identity map, and the caller's session is untouched.
    columns = (AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.object_type,
               AuditEntry.object_id, AuditEntry.before, AuditEntry.after, AuditEntry.prev_hash,
               AuditEntry.hash)
    while True:
        rows = session.execute(
            select(*columns).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not rows:
            return VerifyResult(ok=True, count=count)
        for row in rows:
            if row.prev_hash != prev:
                return VerifyResult(False, count, row.id,
                                    "its previous-row hash does not match the row before it "
                                    "(a row was removed or inserted)")
            expected = entry_hash(row.prev_hash, row.at, row.actor, row.action, row.object_type,
                                  row.object_id, row.before, row.after)
            if row.hash != expected:
                return VerifyResult(False, count, row.id,
                                    "its content does not match its hash (the row was changed)")
            prev, count, last_id = row.hash, count + 1, row.id


@dataclass(frozen=True)
class Filters:
    """What staff filter the log by; every field optional. Times are aware UTC bounds, inclusive."""

    action: str = ""
    actor: str = ""
    object_type: str = ""
    object_id: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(filters: Filters):
    """A SELECT of the matching entries, newest first (the caller pages or streams it)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if filters.action:
        query = query.where(AuditEntry.action.like(_escape_like(filters.action) + "%", escape="\\"))
    if filters.actor:
        query = query.where(AuditEntry.actor.ilike("%" + _escape_like(filters.actor) + "%", escape="\\"))
    if filters.object_type:
        query = query.where(AuditEntry.object_type == filters.object_type)
    if filters.object_id:
        query = query.where(AuditEntry.object_id == filters.object_id)
    if filters.since:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.at <= filters.until)
    return query
