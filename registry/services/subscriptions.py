"""Subscribing: double opt-in, topic choices, signed preference and one-click unsubscribe links."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.domain import topics as rules
from registry.domain.clock import now_utc
from registry.models import (
    ChangeSet,
    Delivery,
    Document,
    Notice,
    OutgoingMail,
    Subscriber,
    Subscription,
    Topic,
)
from registry.models.subscribers import ConfirmationToken
from registry.services import mail

CONFIRM_TTL = timedelta(hours=72)
MAILS_PER_DAY = 3
CONFIRM_TEMPLATE = "confirm_subscription"
ACTIVE_TEMPLATE = "subscription_already_active"
# URL paths of the subscriptions blueprint; the mail worker has no request to build them from.
CONFIRM_PATH = "/subscriptions/confirm/"
PREFERENCES_PATH = "/subscriptions/preferences/"
UNSUBSCRIBE_PATH = "/subscriptions/unsubscribe/"

EMAIL_MAX = 254
# Deliberately loose (RFC 5322 allows far more); the confirmation email is the real check.
_EMAIL = re.compile(r"[^@\s\"(),:;<>\[\]\\]{1,64}@[^@\s\"(),:;<>\[\]\\_]+\.[^@\s\"(),:;<>\[\]\\_.]{2,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SubscriptionError(ValueError):
    """Input that cannot be accepted; `field` names the form field it belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased, or SubscriptionError with a message for the form."""
    address = (raw or "").strip().lower()
    if not address:
        raise SubscriptionError("email", "Enter your email address.")
    if len(address) > EMAIL_MAX or _CONTROL.search(address) or not _EMAIL.fullmatch(address):
        raise SubscriptionError("email", "Enter a valid email address, like name@example.com.")
    domain = address.rsplit("@", 1)[1]
    if ".." in domain or any(label.startswith("-") or label.endswith("-") for label in domain.split(".")):
        raise SubscriptionError("email", "Enter a valid email address, like name@example.com.")
    return address


def clean_text(value: str, limit: int) -> str:
    """One line of text without control characters (PostgreSQL refuses NUL), at most `limit` long."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


# -- topics -----------------------------------------------------------------------------------------

def all_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.position, Topic.name, Topic.id)))


def topic_rule(topic: Topic) -> rules.TopicRule:
    return rules.TopicRule(topic.id, topic.is_administrative, topic.is_default_on)


def _check_topic_fields(name: str, description: str) -> tuple[str, str]:
    name = clean_text(name, 1000)
    if not name:
        raise SubscriptionError("name", "Give the topic a name.")
    if len(name) > 200:
        raise SubscriptionError("name", "Keep the name under 200 characters.")
    description = (description or "").replace("\x00", "").strip()
    if len(description) > 2000:
        raise SubscriptionError("description", "Keep the description under 2,000 characters.")
    return name, description


def add_topic(session: Session, key: str, name: str, description: str, is_default_on: bool, *,
              position: int | None = None, now: datetime | None = None) -> Topic:
    """Create a configurable topic and every existing subscriber's choice for it (the new-topic rule)."""
    now = now or now_utc()
    key = (key or "").strip()
    try:
        rules.check_key(key)
    except ValueError as error:
        raise SubscriptionError("key", str(error)) from None
    name, description = _check_topic_fields(name, description)
    if session.scalar(select(Topic.id).where(Topic.key == key)) is not None:
        raise SubscriptionError("key", f"A topic with the key {key} already exists.")
    if key.startswith(rules.DOCUMENT_PREFIX):
        slug = key.removeprefix(rules.DOCUMENT_PREFIX)
        if session.scalar(select(Document.id).where(Document.slug == slug)) is None:
            raise SubscriptionError("key", f"There is no document with the slug {slug}.")
    if position is None:
        position = (session.scalar(select(func.max(Topic.position))) or 0) + 1
    topic = Topic(key=key, name=name, description=description, is_administrative=False,
                  is_default_on=is_default_on, position=position, created_at=now)
    session.add(topic)
    session.flush()

    configurable = select(Topic.id).where(Topic.is_administrative.is_(False), Topic.id != topic.id)
    existing: dict[int, list[bool]] = defaultdict(list)
    for subscriber_id, on in session.execute(
        select(Subscription.subscriber_id, Subscription.is_subscribed)
        .where(Subscription.topic_id.in_(configurable))
    ):
        existing[subscriber_id].append(on)
    rows = [
        {"subscriber_id": subscriber_id, "topic_id": topic.id, "updated_at": now,
         "is_subscribed": rules.new_topic_choice(existing.get(subscriber_id, ()), is_default_on)}
        for subscriber_id in session.scalars(select(Subscriber.id))
    ]
    if rows:
        session.execute(insert(Subscription), rows)
    return topic


def update_topic(session: Session, topic: Topic, *, name: str, description: str, is_default_on: bool,
                 position: int) -> Topic:
    """Changing the default affects only subscribers who arrive later, never existing choices."""
    topic.name, topic.description = _check_topic_fields(name, description)
    topic.is_default_on = is_default_on or topic.is_administrative
    topic.position = position
    session.flush()
    return topic


# -- choices ----------------------------------------------------------------------------------------

def set_choices(session: Session, subscriber: Subscriber, choices: dict[int, bool], now: datetime) -> None:
    rows = {row.topic_id: row for row in session.scalars(
        select(Subscription).where(Subscription.subscriber_id == subscriber.id))}
    for topic_id, on in choices.items():
        row = rows.get(topic_id)
        if row is None:
            session.add(Subscription(subscriber_id=subscriber.id, topic_id=topic_id, is_subscribed=on,
                                     updated_at=now))
        elif row.is_subscribed != on:
            row.is_subscribed = on
            row.updated_at = now
    session.flush()


def choices_of(session: Session, subscriber: Subscriber) -> list[tuple[Topic, bool]]:
    """Every topic with this subscriber's choice; a missing row reads as the topic's default."""
    saved = dict(session.execute(select(Subscription.topic_id, Subscription.is_subscribed)
                                 .where(Subscription.subscriber_id == subscriber.id)).all())
    return [(topic, topic.is_administrative or saved.get(topic.id, topic.is_default_on))
            for topic in all_topics(session)]


def update_topics(session: Session, subscriber: Subscriber, topic_keys: list[str],
                  now: datetime | None = None) -> None:
    topics = all_topics(session)
    chosen = _chosen_ids(topics, topic_keys)
    set_choices(session, subscriber, rules.choices_from_form([topic_rule(t) for t in topics], chosen),
                now or now_utc())


def _chosen_ids(topics: list[Topic], topic_keys: list[str]) -> set[int]:
    by_key = {t.key: t.id for t in topics}
    if any(key not in by_key for key in topic_keys):
        raise SubscriptionError("topics", "Choose topics from the list; this form may be out of date.")
    return {by_key[key] for key in topic_keys}


def delete_subscription(session: Session, subscriber: Subscriber, now: datetime | None = None) -> None:
    now = now or now_utc()
    if subscriber.status != "deleted":
        subscriber.status = "deleted"
        subscriber.deleted_at = now
    _retire_tokens(session, subscriber, now)
    session.flush()


def one_click_unsubscribe(session: Session, subscriber_id: int, topic_id: int,
                          now: datetime | None = None) -> Subscriber | None:
    """Uncheck the topic (Administrative: end the subscription); None when nothing matches."""
    now = now or now_utc()
    subscriber = session.get(Subscriber, subscriber_id)
    topic = session.get(Topic, topic_id)
    if subscriber is None or topic is None:
        return None
    if subscriber.status == "deleted":
        return subscriber
    if rules.one_click_ends_subscription(topic_rule(topic)):
        delete_subscription(session, subscriber, now)
    else:
        set_choices(session, subscriber, {topic.id: False}, now)
    return subscriber


# -- double opt-in ----------------------------------------------------------------------------------

def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def mails_sent_recently(session: Session, address: str, now: datetime) -> int:
    return session.scalar(
        select(func.count()).select_from(OutgoingMail).where(
            OutgoingMail.to == address, OutgoingMail.template.in_((CONFIRM_TEMPLATE, ACTIVE_TEMPLATE)),
            OutgoingMail.created_at > now - timedelta(hours=24))
    ) or 0


def _subscriber_for(session: Session, address: str, now: datetime) -> Subscriber:
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is not None:
        return subscriber
    try:
        with session.begin_nested():
            subscriber = Subscriber(email=address, status="pending", source="form", created_at=now)
            session.add(subscriber)
    except IntegrityError:  # the same address, submitted twice at once
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    return subscriber


def subscribe(session: Session, *, email: str, topic_keys: list[str], now: datetime | None = None) -> str:
    """Queue a confirmation (or, for an active subscriber, a link to their preferences).

    The caller answers the same whatever this returns: "confirmation", "already_active" or
    "limited" (already 3 emails to this address in 24 hours, so nothing is sent).
    """
    now = now or now_utc()
    address = normalise_email(email)
    topics = all_topics(session)
    chosen = _chosen_ids(topics, topic_keys) | {t.id for t in topics if t.is_administrative}
    if mails_sent_recently(session, address, now) >= MAILS_PER_DAY:
        return "limited"
    subscriber = _subscriber_for(session, address, now)
    settings = current_app.config["REGISTRY"]
    if subscriber.status == "confirmed":
        mail.queue(session, to=address, template=ACTIVE_TEMPLATE, now=now, context={
            "company_name": settings.company_name, "preferences_url": preferences_url(subscriber.id),
        })
        return "already_active"
    raw = new_token()
    expires_at = now + CONFIRM_TTL
    session.add(ConfirmationToken(subscriber_id=subscriber.id, token_hash=_hash(raw),
                                  topic_ids=sorted(chosen), offered_topic_ids=[t.id for t in topics],
                                  created_at=now, expires_at=expires_at))
    local = expires_at.astimezone(ZoneInfo(settings.legal_timezone))
    mail.queue(session, to=address, template=CONFIRM_TEMPLATE, now=now, context={
        "company_name": settings.company_name,
        "confirm_url": f"{settings.base_url}{CONFIRM_PATH}{raw}",
        "expires_at": expires_at.isoformat(),
        "expires_local": f"{local.day} {local:%B %Y, %H:%M %Z}",
        "topics": [t.name for t in topics if t.id in chosen],
        "subscribe_url": f"{settings.base_url}/subscriptions/",
    })
    return "confirmation"


@dataclass(frozen=True)
class TokenCheck:
    state: str  # valid, used, expired or unknown
    token: ConfirmationToken | None = None


def check_confirmation(session: Session, raw: str, now: datetime | None = None) -> TokenCheck:
    """What a confirmation link would do; changes nothing (a GET may call it)."""
    now = now or now_utc()
    if not raw or len(raw) > 200:
        return TokenCheck("unknown")
    token = session.scalar(select(ConfirmationToken).where(ConfirmationToken.token_hash == _hash(raw)))
    if token is None:
        return TokenCheck("unknown")
    if token.used_at is not None:
        return TokenCheck("used", token)
    if token.expires_at <= now:
        return TokenCheck("expired", token)
    return TokenCheck("valid", token)


def confirm(session: Session, raw: str, now: datetime | None = None) -> TokenCheck:
    now = now or now_utc()
    check = check_confirmation(session, raw, now)
    if check.state != "valid":
        return check
    token = check.token
    subscriber = token.subscriber
    topics = all_topics(session)
    choices = rules.choices_on_confirm([topic_rule(t) for t in topics], token.topic_ids,
                                       token.offered_topic_ids)
    set_choices(session, subscriber, choices, now)
    subscriber.status = "confirmed"
    subscriber.confirmed_at = now
    subscriber.deleted_at = None
    # One confirmation settles the address: older links must not re-apply older choices.
    _retire_tokens(session, subscriber, now)
    session.flush()
    return check


def _retire_tokens(session: Session, subscriber: Subscriber, now: datetime) -> None:
    session.execute(update(ConfirmationToken)
                    .where(ConfirmationToken.subscriber_id == subscriber.id,
                           ConfirmationToken.used_at.is_(None))
                    .values(used_at=now))


# -- stateless signed links -------------------------------------------------------------------------
# The mail worker builds one of each per recipient (100,000 per notice) without the database:
# an HMAC-SHA256 over the ids, with a key derived from SECRET_KEY and the link's purpose.

_PREFERENCES, _UNSUBSCRIBE = b"preferences", b"unsubscribe"
_MAC_BYTES = 16
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,60}")


@lru_cache(maxsize=8)
def _mac_base(secret: str, purpose: bytes) -> hmac.HMAC:
    key = hmac.new(secret.encode(), b"registry.subscriptions." + purpose, hashlib.sha256).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _sign(purpose: bytes, payload: bytes, secret: str | None = None) -> str:
    mac = _mac_base(secret or current_app.config["SECRET_KEY"], purpose).copy()
    mac.update(payload)
    return base64.urlsafe_b64encode(payload + mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode()


def _unsign(purpose: bytes, token: str, payload_size: int) -> bytes | None:
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(blob) != payload_size + _MAC_BYTES:
        return None
    payload = blob[:payload_size]
    mac = _mac_base(current_app.config["SECRET_KEY"], purpose).copy()
    mac.update(payload)
    return payload if hmac.compare_digest(mac.digest()[:_MAC_BYTES], blob[payload_size:]) else None


def preferences_token(subscriber_id: int, secret: str | None = None) -> str:
    """`secret` defaults to the app's; the mail worker passes it to sign many tokens in a row."""
    return _sign(_PREFERENCES, struct.pack(">Q", subscriber_id), secret)


def unsubscribe_token(subscriber_id: int, topic_id: int, secret: str | None = None) -> str:
    return _sign(_UNSUBSCRIBE, struct.pack(">QQ", subscriber_id, topic_id), secret)


def read_preferences_token(token: str) -> int | None:
    payload = _unsign(_PREFERENCES, token, 8)
    return None if payload is None else struct.unpack(">Q", payload)[0]


def read_unsubscribe_token(token: str) -> tuple[int, int] | None:
    payload = _unsign(_UNSUBSCRIBE, token, 16)
    return None if payload is None else struct.unpack(">QQ", payload)


def preferences_url(subscriber_id: int) -> str:
    """Absolute; needs only an app context."""
    return f"{current_app.config['REGISTRY'].base_url}{PREFERENCES_PATH}{preferences_token(subscriber_id)}"


def unsubscribe_url(subscriber_id: int, topic_id: int) -> str:
    """The RFC 8058 one-click URL for List-Unsubscribe; absolute, needs only an app context."""
    return (f"{current_app.config['REGISTRY'].base_url}{UNSUBSCRIBE_PATH}"
            f"{unsubscribe_token(subscriber_id, topic_id)}")


# -- what was sent ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentNotice:
    subject: str
    change_title: str
    created_at: datetime
    sent_at: datetime | None
    status: str
    last_event: str | None


def history(session: Session, subscriber: Subscriber, limit: int = 200) -> list[SentNotice]:
    """The notices sent to this subscriber's address, newest first."""
    rows = session.execute(
        select(Delivery, Notice, ChangeSet)
        .join(Notice, Notice.id == Delivery.notice_id)
        .join(ChangeSet, ChangeSet.id == Notice.change_set_id)
        .where((Delivery.subscriber_id == subscriber.id) | (Delivery.email == subscriber.email))
        .order_by(Notice.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return [SentNotice(notice.subject, change_set.title, notice.created_at, delivery.sent_at,
                       delivery.status, delivery.last_event)
            for delivery, notice, change_set in rows]
