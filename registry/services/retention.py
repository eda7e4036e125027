"""What is kept of a subscription once it ends: erased at once but for a keyed hash, purged later.

Deleting a subscription (from the preferences page, or one click on the Administrative topic) erases
at once what is not needed as proof: the name, the company, the topic choices and every token. The
address itself is replaced, on the subscriber and on the settled delivery and mail records, by a
keyed hash (HMAC-SHA256 with a key of its own, derived from SECRET_KEY for this purpose alone), so
that staff can still answer "was this address told?" by typing the address, and nobody can read the
addresses back. After the retention period (12 months by default) `purge` removes everything left of
closed subscriptions, their delivery records and outbox files included, and audits the counts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from flask import current_app
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from registry.domain.clock import now_utc
from registry.models import ConfirmationToken, Delivery, MailQuota, OutgoingMail, Subscriber, Subscription
from registry.services import audit, notices

ERASED_PREFIX = "erased:"
RETENTION = timedelta(days=365)
SETTLED = ("sent", "suppressed", "failed")


def erased_address(address: str) -> str:
    """What the records keep of a (normalised) address once its subscription is deleted."""
    dedicated = current_app.config["REGISTRY"].erasure_key
    key = dedicated.encode() if dedicated else hmac.new(
        current_app.config["SECRET_KEY"].encode(), b"registry.retention.erasure", hashlib.sha256).digest()
    return ERASED_PREFIX + hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


def erase(session: Session, subscriber: Subscriber) -> None:
    """Called once, by the deletion that ended the subscription, in its transaction."""
    address = subscriber.email
    if address.startswith(ERASED_PREFIX):
        return
    hashed = erased_address(address)
    # The subscriber's id after the hash keeps the rows unique when the same address subscribes and
    # deletes again (deliveries are unique per notice and address; subscribers per address).
    erased_as = f"{hashed}:{subscriber.id}"
    session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber.id))
    session.execute(delete(ConfirmationToken).where(ConfirmationToken.subscriber_id == subscriber.id))
    # A notice still queued for them is not sent: they are no longer subscribed (the proof says so).
    # One in flight keeps the address the worker sends to; `purge` hashes it once it is settled.
    cancelled = session.scalars(
        update(Delivery).where(Delivery.subscriber_id == subscriber.id, Delivery.status == "queued")
        .values(status="failed", error="not sent: the subscription was deleted", next_attempt_at=None)
        .returning(Delivery.notice_id).execution_options(synchronize_session=False)).all()
    session.execute(update(Delivery)
                    .where(Delivery.subscriber_id == subscriber.id, Delivery.status.in_(SETTLED))
                    .values(email=erased_as).execution_options(synchronize_session=False))
    if cancelled:
        notices.settle(session, sorted(set(cancelled)), now=now_utc())
    # A confirmation still queued would confirm nothing now (its token is gone): it is not sent.
    session.execute(update(OutgoingMail).where(OutgoingMail.to == address, OutgoingMail.status == "queued")
                    .values(status="dropped", error="not sent: the subscription was deleted")
                    .execution_options(synchronize_session=False))
    session.execute(update(OutgoingMail).where(OutgoingMail.to == address, OutgoingMail.status != "sending")
                    .values(to=hashed, context={}).execution_options(synchronize_session=False))
    subscriber.email, subscriber.name, subscriber.company = erased_as, "", ""
    session.flush()


@dataclass(frozen=True)
class PurgeReport:
    subscribers_erased: int
    addresses_hashed: int
    subscribers: int
    deliveries: int
    mails: int
    tokens: int
    choices: int
    quotas: int
    outbox_files: int


def purge(session: Session, *, now: datetime | None = None, retention: timedelta = RETENTION,
          outbox: Path | None = None, actor: str = "retention job") -> PurgeReport:
    """Remove every record of subscriptions closed more than `retention` ago; flushes, audits counts.
    `outbox` defaults to the instance's, where the development sender writes its .eml files."""
    now = now or now_utc()
    outbox = outbox or Path(current_app.config["REGISTRY"].instance_path) / "outbox"
    cutoff = now - retention
    erased = Subscriber.email.startswith(ERASED_PREFIX)
    # Subscriptions deleted before deletion erased anything.
    unerased = session.scalars(select(Subscriber).where(Subscriber.status == "deleted", ~erased)).all()
    for subscriber in unerased:
        erase(session, subscriber)
    # Deliveries that were in flight when their subscription was deleted have settled since.
    hashed = session.execute(
        update(Delivery).where(
            Delivery.status.in_(SETTLED), ~Delivery.email.startswith(ERASED_PREFIX),
            Delivery.subscriber_id.in_(select(Subscriber.id).where(Subscriber.status == "deleted", erased)))
        .values(email=select(Subscriber.email).where(Subscriber.id == Delivery.subscriber_id)
                .scalar_subquery())
        .execution_options(synchronize_session=False)
    ).rowcount

    closed = select(Subscriber.id, Subscriber.email).where(or_(
        and_(Subscriber.status == "deleted", Subscriber.deleted_at < cutoff),
        # Never confirmed: the confirmation links died after 72 hours; the address was never ours to keep.
        and_(Subscriber.status == "pending", Subscriber.created_at < cutoff),
    ))
    rows = session.execute(closed).all()
    ids = [row.id for row in rows]
    addresses = {_address_key(row.email) for row in rows}
    counts = {"deliveries": 0, "mails": 0, "tokens": 0, "choices": 0, "subscribers": 0}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        counts["deliveries"] += _delete(session, Delivery, Delivery.subscriber_id.in_(chunk))
        counts["tokens"] += _delete(session, ConfirmationToken, ConfirmationToken.subscriber_id.in_(chunk))
        counts["choices"] += _delete(session, Subscription, Subscription.subscriber_id.in_(chunk))
        counts["subscribers"] += _delete(session, Subscriber, Subscriber.id.in_(chunk))
    keys = sorted(addresses)
    for start in range(0, len(keys), 1000):
        counts["mails"] += _delete(session, OutgoingMail, OutgoingMail.to.in_(keys[start:start + 1000]),
                                   OutgoingMail.status != "sending")
    quotas = _delete(session, MailQuota, MailQuota.day < (now - timedelta(days=2)).date())
    files = _purge_outbox(outbox, addresses)
    report = PurgeReport(subscribers_erased=len(unerased), addresses_hashed=hashed, quotas=quotas,
                         outbox_files=files, **counts)
    audit.record(session, actor=actor, action="subscribers.purge", object_type="subscribers",
                 object_id="retention", after={**asdict(report), "retention_days": retention.days}, at=now)
    session.flush()
    return report


def _address_key(stored: str) -> str:
    """How mail records name a subscriber's address: the address, or its hash once erased."""
    return stored[:len(ERASED_PREFIX) + 64] if stored.startswith(ERASED_PREFIX) else stored


def _delete(session: Session, model, *conditions) -> int:
    statement = delete(model).where(*conditions).execution_options(synchronize_session=False)
    return session.execute(statement).rowcount


def _purge_outbox(outbox: Path, addresses: set[str]) -> int:
    """The development sender's .eml files addressed to a purged subscription (by address or its hash)."""
    if not addresses or not outbox.is_dir():
        return 0
    removed = 0
    parser = BytesHeaderParser()
    for path in outbox.glob("*.eml"):
        with path.open("rb") as handle:
            headers = parser.parse(handle)
        recipients = {address.strip().lower() for _name, address in getaddresses(headers.get_all("To", []))}
        if any(r in addresses or erased_address(r) in addresses for r in recipients):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
