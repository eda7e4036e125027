"""Append rows to the hash-chained audit log, check that chain, and count refused sign-ins."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.domain import throttle
from registry.domain.clock import now_utc
from registry.models import AuditEntry, RefusalWindow

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
    # Without a lock, two transactions could both read the same previous hash and fork the chain.
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        _sqlite_write_lock(session)
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    entry = AuditEntry(
        at=at, actor=actor, actor_id=actor_id, action=action, object_type=object_type,
        object_id=object_id, before=before, after=after, prev_hash=prev,
        hash=entry_hash(prev, at, actor, action, object_type, object_id, before, after),
    )
    session.add(entry)
    session.flush()
    return entry


def _sqlite_write_lock(session: Session) -> None:
    """Hold SQLite's write lock from here to the commit, before the previous hash is read.

    pysqlite runs a SELECT outside any transaction and opens one (deferred) only at the first
    INSERT, so two writers could both read the same last row. A connection already in a
    transaction has written, so it holds the lock; otherwise BEGIN IMMEDIATE takes it now
    (waiting up to the busy timeout), and pysqlite then leaves the transaction to commit().
    """
    connection = session.connection()
    if not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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


UNTRUSTED = "untrusted: "


def untrusted_actor(claimed: object) -> str:
    """The actor of an attempt no account stands behind: what the client typed, cut short and marked."""
    return UNTRUSTED + throttle.untrusted_text(claimed)


def upsert(session: Session, model):
    """INSERT ... ON CONFLICT for the session's database (PostgreSQL or SQLite, which both have it)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


# What a refused attempt is counted under: the parts the refusing limit is about. Varying the other
# parts (a new account name at every attempt from one address, a new address at every attempt at
# one account) then still adds no audit row.
REFUSAL_SCOPES = {"address": ("ip",), "account_address": ("ip", "account"), "account": ("account",)}


def _refusal_actor(claimed: str, user_id: int | None) -> str:
    # With a user id the name came from the account itself (a refused TOTP code), not from the client.
    return claimed if user_id is not None else UNTRUSTED + claimed


def record_refusal(session: Session, *, kind: str, scope: str, ip: str, claimed_account: str,
                   user_id: int | None = None, now: datetime | None = None) -> int:
    """Count one refused attempt; only the first of its window writes an audit row.

    `scope` names the limit that refused it (a key of REFUSAL_SCOPES). Returns the window's count so
    far: the counter is one atomic upsert, so concurrent refusals never lose a count and exactly one
    of them sees 1.
    """
    now = now or now_utc()
    window = throttle.refusal_window(now)
    account = str(claimed_account or "")
    parts = {"ip": ip, "account": account}
    key = hashlib.sha256(json.dumps(
        [kind, scope, *(parts[name] for name in REFUSAL_SCOPES[scope]), window.isoformat()]).encode()
    ).hexdigest()
    claimed = throttle.untrusted_text(account)
    insert = upsert(session, RefusalWindow).values(
        key_sha256=key, kind=kind, scope=scope, ip=ip[:64], claimed_account=claimed, user_id=user_id,
        window_start=window, count=1, first_at=now, last_at=now)
    count = session.execute(
        insert.on_conflict_do_update(
            index_elements=[RefusalWindow.key_sha256],
            set_={"count": RefusalWindow.count + 1, "last_at": insert.excluded.last_at})
        .returning(RefusalWindow.count)
    ).scalar_one()
    if count == 1:
        record(session, actor=_refusal_actor(claimed, user_id), actor_id=user_id,
               action=f"auth.{kind}.refused", object_type="refusals", object_id=key[:16], at=now,
               after={"limit": scope, "ip": ip, "claimed_account": claimed,
                      "untrusted_input": user_id is None, "window_start": window,
                      "window_minutes": throttle.REFUSAL_WINDOW.seconds // 60,
                      "note": "further refusals in this window are counted and summarised when it ends"})
    return count


def close_refusal_windows(session: Session, now: datetime | None = None, *, batch: int = 100) -> int:
    """Write one summary audit row for each refusal window that is over; returns how many closed."""
    now = now or now_utc()
    ended_before = now - throttle.REFUSAL_WINDOW - throttle.REFUSAL_GRACE
    windows = session.scalars(
        select(RefusalWindow).where(RefusalWindow.closed_at.is_(None),
                                    RefusalWindow.window_start <= ended_before)
        .order_by(RefusalWindow.id).limit(batch)
    ).all()
    closed = 0
    for window in windows:
        # Two workers may sweep at once: only the one whose UPDATE closed the window writes the summary.
        moved = session.execute(
            update(RefusalWindow).where(RefusalWindow.id == window.id, RefusalWindow.closed_at.is_(None))
            .values(closed_at=now).execution_options(synchronize_session=False))
        if moved.rowcount != 1:
            continue
        closed += 1
        if window.count > 1:  # a single refusal is fully described by its first audit row
            record(session, actor=_refusal_actor(window.claimed_account, window.user_id),
                   actor_id=window.user_id, action=f"auth.{window.kind}.refused.summary",
                   object_type="refusals", object_id=window.key_sha256[:16], at=now,
                   after={"limit": window.scope, "ip": window.ip, "claimed_account": window.claimed_account,
                          "untrusted_input": window.user_id is None, "refused": window.count,
                          "first_at": window.first_at, "last_at": window.last_at,
                          "window_start": window.window_start})
    return closed


# A closed window's summary is in the audit log; its counter row is kept a while for inspection.
KEEP_CLOSED_WINDOWS = timedelta(days=7)


def forget_closed_windows(session: Session, now: datetime | None = None) -> int:
    """Delete counter rows of windows summarised more than KEEP_CLOSED_WINDOWS ago; returns how many."""
    cutoff = (now or now_utc()) - KEEP_CLOSED_WINDOWS
    return session.execute(
        delete(RefusalWindow).where(RefusalWindow.closed_at <= cutoff)
        .execution_options(synchronize_session=False)).rowcount
