"""Customers' webhook endpoints: adding, rotating, disabling them, and writing the events they receive.

Events are written in the transaction of the change they report (an outbox): one EndpointEvent per
event and one EndpointDelivery per endpoint that follows it; the worker (notify/endpoints.py) sends
them. Nothing here makes a network call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from registry.domain import netguard, signing
from registry.domain import organisations as org_rules
from registry.domain.clock import now_utc
from registry.models import (
    ChangeSet,
    Endpoint,
    EndpointAttempt,
    EndpointDelivery,
    EndpointEvent,
    EndpointTopic,
    Objection,
    Organisation,
    OrganisationContact,
    Subscriber,
    Topic,
)
from registry.services import audit, mail, organisations
from registry.services.notices import topic_keys as change_topic_keys

CHANGE_EVENTS = ("change.announced", "change.date_moved", "change.withdrawn", "change.effective")
EVENT_TYPES = (*CHANGE_EVENTS, "objection.updated", "ping")
MAX_PER_OWNER = 10
ROTATION_OVERLAP = timedelta(hours=24)
DISABLED_TEMPLATE = "endpoint_disabled"


class EndpointError(ValueError):
    """A refused endpoint form; `field` is the form field it concerns."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Owner:
    subscriber: Subscriber | None = None
    organisation: Organisation | None = None

    def where(self):
        if self.subscriber is not None:
            return Endpoint.subscriber_id == self.subscriber.id
        return Endpoint.organisation_id == self.organisation.id


def _settings():
    return current_app.config["REGISTRY"]


# -- endpoints --------------------------------------------------------------------------------------

def check_url(url: str) -> str:
    """The URL as stored, or EndpointError naming the problem (a literal address is checked now too;
    a host name is checked at every attempt, against what it resolves to then)."""
    allow = _settings().endpoints_allow_private
    try:
        target = netguard.parse_url(url, allow_http=allow)
        try:
            netguard.choose([target.host], allow_loopback=allow)
        except netguard.AddressRefused as error:
            if not str(error).startswith(f"{target.host!r} is not an IP address"):
                raise
    except netguard.AddressRefused as error:
        raise EndpointError("url", str(error)) from None
    return url.strip()


def check_topics(session: Session, keys: list[str]) -> list[str]:
    known = set(session.scalars(select(Topic.key)))
    chosen = sorted({k for k in keys if isinstance(k, str)})
    unknown = [k for k in chosen if k not in known]
    if unknown:
        named = ", ".join(repr(k[:60]) for k in unknown[:3])
        raise EndpointError("topics", f"There is no topic {named}.")
    if not chosen:
        raise EndpointError("topics", "Choose at least one topic for this endpoint to follow.")
    return chosen


def owned(session: Session, owner: Owner) -> list[Endpoint]:
    return list(session.scalars(select(Endpoint).where(owner.where()).order_by(Endpoint.id)))


def get_owned(session: Session, owner: Owner, endpoint_id: int) -> Endpoint | None:
    return session.scalar(select(Endpoint).where(owner.where(), Endpoint.id == endpoint_id))


def create(session: Session, owner: Owner, *, url: str, topic_keys: list[str], actor: str,
           now: datetime | None = None) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (shown once), with a ping event queued to it."""
    now = now or now_utc()
    url = check_url(url)
    keys = check_topics(session, topic_keys)
    count = session.scalar(select(func.count()).select_from(Endpoint).where(owner.where()))
    if count >= MAX_PER_OWNER:
        raise EndpointError("url", f"At most {MAX_PER_OWNER} endpoints each; disable or reuse one.")
    secret = signing.new_secret()
    endpoint = Endpoint(subscriber_id=owner.subscriber.id if owner.subscriber else None,
                        organisation_id=owner.organisation.id if owner.organisation else None,
                        url=url, secret=secret, created_at=now, updated_at=now,
                        topics=[EndpointTopic(topic_key=k) for k in keys])
    session.add(endpoint)
    session.flush()
    audit.record(session, actor=actor, action="endpoint.create", object_type="endpoint",
                 object_id=endpoint.id, at=now, after={"url": url, "topics": keys})
    ping(session, endpoint, now=now)
    return endpoint, secret


def ping(session: Session, endpoint: Endpoint, *, now: datetime) -> EndpointDelivery:
    event = _event(session, "ping", {"endpoint_id": endpoint.id, "url": endpoint.url,
                                      "topics": endpoint.topic_keys}, now)
    delivery = EndpointDelivery(event_id=event.id, endpoint_id=endpoint.id, created_at=now)
    session.add(delivery)
    session.flush()
    return delivery


def secrets_for(endpoint: Endpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during the overlap."""
    current = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and \
            endpoint.previous_secret_expires_at > now:
        current.append(endpoint.previous_secret)
    return current


def rotate(session: Session, endpoint: Endpoint, *, actor: str, now: datetime | None = None) -> str:
    """A new secret; the old one keeps signing (a second signature) for ROTATION_OVERLAP."""
    now = now or now_utc()
    secret = signing.new_secret()
    session.execute(update(Endpoint).where(Endpoint.id == endpoint.id).values(
        previous_secret=endpoint.secret, previous_secret_expires_at=now + ROTATION_OVERLAP,
        secret=secret, updated_at=now))
    session.refresh(endpoint)
    audit.record(session, actor=actor, action="endpoint.rotate", object_type="endpoint",
                 object_id=endpoint.id, at=now)
    return secret


def enable(session: Session, endpoint: Endpoint, *, actor: str, now: datetime | None = None) -> None:
    now = now or now_utc()
    changed = session.execute(update(Endpoint)
                              .where(Endpoint.id == endpoint.id, Endpoint.is_enabled.is_(False))
                              .values(is_enabled=True, disabled_at=None, disabled_reason="", updated_at=now)
                              ).rowcount
    session.refresh(endpoint)
    if changed:
        audit.record(session, actor=actor, action="endpoint.enable", object_type="endpoint",
                     object_id=endpoint.id, at=now)
        ping(session, endpoint, now=now)


def disable(session: Session, endpoint_id: int, *, reason: str, actor: str, now: datetime,
            tell_owner: bool) -> bool:
    """Stop sending to the endpoint (one conditional UPDATE decides who disables it); what was still
    queued for it fails with the reason. Returns False if it was already disabled."""
    changed = session.execute(update(Endpoint)
                              .where(Endpoint.id == endpoint_id, Endpoint.is_enabled.is_(True))
                              .values(is_enabled=False, disabled_at=now, disabled_reason=reason[:1000],
                                      updated_at=now)).rowcount
    if not changed:
        return False
    session.execute(update(EndpointDelivery).where(
        EndpointDelivery.endpoint_id == endpoint_id, EndpointDelivery.status == "queued")
        .values(status="failed", next_attempt_at=None, error=f"endpoint disabled: {reason}"[:1000]))
    audit.record(session, actor=actor, action="endpoint.disable", object_type="endpoint",
                 object_id=endpoint_id, at=now, after={"reason": reason[:1000]})
    if tell_owner:
        endpoint = session.get(Endpoint, endpoint_id)
        for address in owner_addresses(session, endpoint):
            mail.queue(session, to=address, template=DISABLED_TEMPLATE, now=now,
                       context=disabled_mail_context(endpoint, reason))
    return True


def disabled_mail_context(endpoint: Endpoint, reason: str) -> dict:
    settings = _settings()
    return {"company_name": settings.company_name, "url": endpoint.url, "endpoint_id": endpoint.id,
            "reason": reason[:1000], "days": 3}


def owner_addresses(session: Session, endpoint: Endpoint) -> list[str]:
    """Whom an endpoint's trouble is told to: its subscriber, or its organisation's designated contacts."""
    if endpoint.subscriber_id is not None:
        subscriber = session.get(Subscriber, endpoint.subscriber_id)
        return [subscriber.email] if subscriber and subscriber.status != "deleted" else []
    return list(session.scalars(select(OrganisationContact.email).where(
        OrganisationContact.organisation_id == endpoint.organisation_id).order_by(OrganisationContact.email)))


def remove_owned(session: Session, owner: Owner) -> int:
    """Delete an owner's endpoints with their deliveries and log (the owner is going: an organisation
    deleted, a subscription ended). The events stay: they hold no one's data but the change's."""
    ids = select(Endpoint.id).where(owner.where()).scalar_subquery()
    session.execute(delete(EndpointAttempt).where(EndpointAttempt.endpoint_id.in_(ids)))
    session.execute(delete(EndpointDelivery).where(EndpointDelivery.endpoint_id.in_(ids)))
    session.execute(delete(EndpointTopic).where(EndpointTopic.endpoint_id.in_(ids)))
    removed = session.execute(delete(Endpoint).where(owner.where())
                              .execution_options(synchronize_session=False)).rowcount
    return removed


def resend(session: Session, endpoint: Endpoint, delivery_id: int, *, actor: str,
           now: datetime | None = None) -> EndpointDelivery | None:
    """Queue the delivery again (same webhook-id, a new 72-hour window); None if it is not this
    endpoint's or is being sent right now."""
    now = now or now_utc()
    changed = session.execute(update(EndpointDelivery).where(
        EndpointDelivery.id == delivery_id, EndpointDelivery.endpoint_id == endpoint.id,
        EndpointDelivery.status != "sending")
        .values(status="queued", next_attempt_at=None, first_attempt_at=None, claim_token=None, error="")
        .execution_options(synchronize_session=False)).rowcount
    if not changed:
        return None
    audit.record(session, actor=actor, action="endpoint.resend", object_type="endpoint",
                 object_id=endpoint.id, at=now, after={"delivery_id": delivery_id})
    return session.get(EndpointDelivery, delivery_id, populate_existing=True)


def get_delivery(session: Session, endpoint: Endpoint, delivery_id: int) -> EndpointDelivery | None:
    return session.scalar(select(EndpointDelivery).where(EndpointDelivery.id == delivery_id,
                                                         EndpointDelivery.endpoint_id == endpoint.id))


def deliveries(session: Session, endpoint: Endpoint, *, limit: int = 50) -> list[EndpointDelivery]:
    return list(session.scalars(select(EndpointDelivery).where(EndpointDelivery.endpoint_id == endpoint.id)
                                .order_by(EndpointDelivery.id.desc()).limit(limit)))


def latest_deliveries(session: Session, listed: list[Endpoint]) -> dict[int, EndpointDelivery]:
    """Each listed endpoint's newest event delivery (for the lists' "latest event" column)."""
    newest = (select(func.max(EndpointDelivery.id))
              .where(EndpointDelivery.endpoint_id.in_([e.id for e in listed]))
              .group_by(EndpointDelivery.endpoint_id))
    return {d.endpoint_id: d for d in session.scalars(select(EndpointDelivery)
                                                     .where(EndpointDelivery.id.in_(newest)))}


def attempts(session: Session, endpoint: Endpoint, *, limit: int = 100) -> list[EndpointAttempt]:
    return list(session.scalars(select(EndpointAttempt).where(EndpointAttempt.endpoint_id == endpoint.id)
                                .order_by(EndpointAttempt.id.desc()).limit(limit)))


def delivery_status(session: Session, delivery: EndpointDelivery) -> dict:
    """The small JSON the endpoint page polls for its test event."""
    last = session.scalar(select(EndpointAttempt).where(EndpointAttempt.delivery_id == delivery.id)
                          .order_by(EndpointAttempt.id.desc()).limit(1))
    return {"delivery_id": delivery.id, "event": delivery.event.type, "status": delivery.status,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
            "last_attempt": None if last is None else {
                "at": last.at.isoformat(), "status_code": last.status_code, "error": last.error,
                "latency_ms": last.latency_ms, "address": last.address, "ok": last.is_success}}


# -- events -----------------------------------------------------------------------------------------

def _event(session: Session, type_: str, data: dict, now: datetime) -> EndpointEvent:
    event = EndpointEvent(uid=uuid.uuid4().hex, type=type_, created_at=now,
                          payload={"type": type_, "timestamp": now.isoformat(), "data": data})
    session.add(event)
    session.flush()
    return event


def _fan_out(session: Session, event: EndpointEvent, followers, now: datetime) -> int:
    """One delivery per enabled endpoint among `followers` (a WHERE clause on Endpoint), in one
    INSERT ... SELECT, however many there are."""
    chosen = select(literal(event.id), Endpoint.id, literal("queued"), literal(0),
                    literal(now, Endpoint.created_at.type),
                    literal("")).where(Endpoint.is_enabled.is_(True), followers)
    result = session.execute(insert(EndpointDelivery).from_select(
        ["event_id", "endpoint_id", "status", "attempts", "created_at", "error"], chosen))
    return result.rowcount


def _absolute(endpoint: str, **values) -> str:
    from registry.notify.messages import absolute_urls

    (url,) = absolute_urls([(endpoint, values)])
    return url


def change_data(change_set: ChangeSet) -> dict:
    """The stable payload of a change event (ids, titles, absolute URLs, dates, items)."""
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    items = []
    for version in change_set.document_versions:
        items.append({"kind": "document", "document": version.document.slug, "title": version.document.title,
                      "version": version.number, "is_material": version.is_material,
                      "url": _absolute("documents.version", slug=version.document.slug, number=version.number)
                      if version.number else None})
    for record in change_set.subprocessor_records:
        slug = record.subprocessor.slug
        items.append({"kind": "subprocessor", "subprocessor": slug, "name": record.name,
                      "action": record.action, "url": _absolute("subprocessors.entry", slug=slug)})
    return {"change_set_id": change_set.id, "title": change_set.title, "summary": change_set.summary,
            "is_material": change_set.is_material, "status": change_set.status,
            "url": _absolute("public.changes"),
            "objection_url": _absolute("objections.new", change_set_id=change_set.id),
            "published_at": moment(change_set.published_at),
            "effective_at": moment(change_set.effective_at),
            "effective_new_customers_at": moment(change_set.effective_new_customers_at),
            "objection_deadline_at": moment(change_set.objection_deadline_at),
            "withdrawn_at": moment(change_set.withdrawn_at), "items": items}


def change_event(session: Session, change_set: ChangeSet, type_: str, *, now: datetime,
                 **extra: object) -> EndpointEvent:
    """A change event for every endpoint following the change's topics (material: every endpoint)."""
    keys = change_topic_keys(change_set)
    session.flush()
    event = _event(session, type_, change_data(change_set) | extra, now)
    followers = or_(literal(change_set.is_material),
                    exists().where(EndpointTopic.endpoint_id == Endpoint.id,
                                   EndpointTopic.topic_key.in_(keys)))
    _fan_out(session, event, followers, now)
    return event


def objection_event(session: Session, objection: Objection, *, now: datetime) -> EndpointEvent | None:
    """objection.updated, for the endpoints of whoever sent it: the subscriber of its address, and the
    organisation its address belongs to."""
    if objection.reference is None:
        return None
    organisation_id = org_rules.owner(objection.email, organisations.domain_owners(session))
    owners = [Endpoint.subscriber_id.in_(select(Subscriber.id)
                                         .where(Subscriber.email == objection.email.lower()))]
    if organisation_id is not None:
        owners.append(Endpoint.organisation_id == organisation_id)
    from registry.services.objections import status_url

    event = _event(session, "objection.updated", {
        "objection_id": objection.id, "reference": objection.reference, "kind": objection.kind,
        "change_set_id": objection.change_set_id, "status": objection.status, "outcome": objection.outcome,
        "organisation": objection.organisation, "status_url": status_url(objection),
        "updated_at": now.isoformat()}, now)
    _fan_out(session, event, and_(or_(*owners)), now)
    return event
