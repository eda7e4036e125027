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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Integer, any_, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from registry.domain import topics as rules
from registry.domain.clock import now_utc
from registry.domain.emails import InvalidAddress, normalise_address
from registry.domain.text import invisible_characters, invisible_message
from registry.models import (
    ChangeSet,
    Delivery,
    Document,
    MailQuota,
    Notice,
    OutgoingMail,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
)
from registry.models.subscribers import ConfirmationToken
from registry.services import retention
from registry.services.sql import dialect_insert

CONFIRM_TTL = timedelta(hours=72)
MAILS_PER_DAY = 3
# Preference and unsubscribe links work this long after the mail that carried them was sent.
LINK_TTL = timedelta(days=400)
DROPPED = "dropped"
DROP_REASONS = {"limited": f"not sent: more than {MAILS_PER_DAY} requests for this address today",
                "suppressed": "not sent: the address is on the suppression list"}
CONFIRM_TEMPLATE = "confirm_subscription"
ACTIVE_TEMPLATE = "subscription_already_active"
# URL paths of the subscriptions blueprint; the mail worker has no request to build them from.
CONFIRM_PATH = "/subscriptions/confirm/"
PREFERENCES_PATH = "/subscriptions/preferences/"
UNSUBSCRIBE_PATH = "/subscriptions/unsubscribe/"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class SubscriptionError(ValueError):
    """Input that cannot be accepted; `field` names the form field it belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_email(raw: str) -> str:
    """The address as SendGrid accepts it (see domain.emails), or SubscriptionError for the form."""
    try:
        return normalise_address(raw)
    except InvalidAddress as error:
        raise SubscriptionError("email", error.message) from None


def clean_text(value: str, limit: int) -> str:
    """One line of text without control characters (PostgreSQL refuses NUL), at most `limit` long."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


# -- topics -----------------------------------------------------------------------------------------

def all_topics(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.position, Topic.name, Topic.id)))


def topic_rule(topic: Topic) -> rules.TopicRule:
    return rules.TopicRule(topic.id, topic.is_administrative, topic.is_default_on)


def _check_topic_fields(name: str, description: str) -> tuple[str, str]:
    for field, value in (("name", name), ("description", description)):
        if found := invisible_characters(value or ""):
            raise SubscriptionError(field, invisible_message(found))
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
    """End the subscription once: the next generation makes every link mailed so far stale, and what
    is not needed as proof is erased at once (services.retention)."""
    now = now or now_utc()
    session.flush()
    # One conditional UPDATE: two deletions at once (a click and a mail client's one-click POST) end it once.
    ended = session.execute(
        update(Subscriber).where(Subscriber.id == subscriber.id, Subscriber.status != "deleted")
        .values(status="deleted", deleted_at=now, generation=Subscriber.generation + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(subscriber)
    if ended:
        retention.erase(session, subscriber)
        from registry.services import endpoints

        endpoints.remove_owned(session, endpoints.Owner(subscriber=subscriber))


def one_click_unsubscribe(session: Session, subscriber: Subscriber, topic: Topic,
                          now: datetime | None = None) -> None:
    """Uncheck the topic (Administrative: end the subscription); nothing once it has ended."""
    now = now or now_utc()
    if subscriber.status == "deleted":
        return
    if rules.one_click_ends_subscription(topic_rule(topic)):
        delete_subscription(session, subscriber, now)
    else:
        set_choices(session, subscriber, {topic.id: False}, now)


# -- double opt-in ----------------------------------------------------------------------------------

def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def address_hash(address: str) -> str:
    """A keyed hash of a normalised address: counts can be kept per address without the address."""
    mac = _mac_base(current_app.config["SECRET_KEY"], _ADDRESS).copy()
    mac.update(address.encode())
    return mac.hexdigest()


def _count_request(session: Session, address: str, now: datetime) -> int:
    """This request's number among today's (UTC) requests for the address, counted atomically.

    One statement that inserts the day's row or adds one to it: PostgreSQL serialises concurrent
    upserts of one key on the row, SQLite on its write lock, so ten requests at once get 1 to 10.
    """
    quota = MailQuota.__table__
    statement = dialect_insert(session)(quota).values(address_hash=address_hash(address),
                                               day=now.astimezone(UTC).date(), count=1)
    statement = statement.on_conflict_do_update(index_elements=[quota.c.address_hash, quota.c.day],
                                                set_={"count": quota.c.count + 1})
    return session.scalar(statement.returning(quota.c.count))


def _subscriber_for(session: Session, address: str, now: datetime) -> tuple[Subscriber, bool]:
    """The address's subscriber (created pending if new) and whether the address is suppressed."""
    session.execute(dialect_insert(session)(Subscriber.__table__).values(
        email=address, status="pending", source="form", name="", company="", created_at=now, generation=1,
    ).on_conflict_do_nothing(index_elements=[Subscriber.__table__.c.email]))
    subscriber, suppressed = session.execute(
        select(Subscriber, Suppression.email.is_not(None))
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(Subscriber.email == address)
    ).one()
    return subscriber, suppressed


def subscribe(session: Session, *, email: str, topic_keys: list[str], now: datetime | None = None) -> str:
    """Queue a confirmation (or, for an active subscriber, a link to their preferences).

    Returns "confirmation", "already_active", "limited" (a 4th request today for this address) or
    "suppressed" (the provider refuses mail to it). The caller answers the same whatever it returns,
    and every outcome runs the same statements: a token row and a mail row are written each time,
    only live (an unused token, a queued mail) when a mail is really due. So neither the answer nor
    its timing tells whether an address is subscribed.
    """
    now = now or now_utc()
    address = normalise_email(email)
    topics = all_topics(session)
    chosen = _chosen_ids(topics, topic_keys) | {t.id for t in topics if t.is_administrative}
    number = _count_request(session, address, now)
    subscriber, suppressed = _subscriber_for(session, address, now)
    settings = current_app.config["REGISTRY"]
    if number > MAILS_PER_DAY:
        outcome = "limited"
    elif suppressed:
        outcome = "suppressed"
    elif subscriber.status == "confirmed":
        outcome = "already_active"
    else:
        outcome = "confirmation"

    raw = new_token()
    expires_at = now + CONFIRM_TTL
    session.add(ConfirmationToken(subscriber_id=subscriber.id, token_hash=_hash(raw),
                                  topic_ids=sorted(chosen), offered_topic_ids=[t.id for t in topics],
                                  created_at=now, expires_at=expires_at,
                                  used_at=None if outcome == "confirmation" else now))
    if outcome == "confirmation":
        local = expires_at.astimezone(ZoneInfo(settings.legal_timezone))
        template, context = CONFIRM_TEMPLATE, {
            "company_name": settings.company_name,
            "confirm_url": f"{settings.base_url}{CONFIRM_PATH}{raw}",
            "expires_at": expires_at.isoformat(),
            "expires_local": f"{local.day} {local:%B %Y, %H:%M %Z}",
            "topics": [t.name for t in topics if t.id in chosen],
            "subscribe_url": f"{settings.base_url}/subscriptions/",
        }
    elif outcome == "already_active":
        issued = now.astimezone(UTC).date()
        template, context = ACTIVE_TEMPLATE, {
            "company_name": settings.company_name,
            "preferences_url": preferences_url(subscriber.id, subscriber.generation, issued),
        }
    else:
        template, context = CONFIRM_TEMPLATE, {}
    # Not services.mail.queue: a dropped mail is written with its final status, in the same statement
    # shape as a queued one; the worker claims only queued mails.
    session.add(OutgoingMail(to=address, template=template, context=context, created_at=now,
                             status="queued" if context else DROPPED,
                             error=None if context else DROP_REASONS[outcome]))
    session.flush()
    return outcome


def request_link(session: Session, *, email: str, now: datetime | None = None) -> str:
    """A fresh link for someone whose link expired or went stale: the same request as subscribing
    with the default topics, so an active subscriber gets their preferences link, anyone else a
    confirmation, within the same daily limit, and the answer tells nothing about the address."""
    defaults = [t.key for t in all_topics(session) if t.is_default_on and not t.is_administrative]
    return subscribe(session, email=email, topic_keys=defaults, now=now)


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
    # The subscriber's row first (PostgreSQL), so two links of one address confirmed at once queue up
    # instead of deadlocking; then the token is claimed by a conditional UPDATE: one of two clicks wins.
    session.execute(select(Subscriber.id).where(Subscriber.id == token.subscriber_id).with_for_update())
    claimed = session.execute(
        update(ConfirmationToken).where(ConfirmationToken.id == token.id, ConfirmationToken.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return TokenCheck("used", token)
    subscriber = token.subscriber
    session.refresh(subscriber)
    topics = all_topics(session)
    choices = rules.choices_on_confirm([topic_rule(t) for t in topics], token.topic_ids,
                                       token.offered_topic_ids)
    set_choices(session, subscriber, choices, now)
    if subscriber.status == "deleted":
        # A new subscription of the address. Deleting moved the generation on already; this covers
        # links made after that (a notice queued before the deletion and sent after it).
        subscriber.generation += 1
    subscriber.status = "confirmed"
    subscriber.confirmed_at = now
    subscriber.deleted_at = None
    # One confirmation settles the address: older links must not re-apply older choices.
    _retire_tokens(session, subscriber, now)
    session.flush()
    session.refresh(token)
    return check


def _retire_tokens(session: Session, subscriber: Subscriber, now: datetime) -> None:
    session.execute(update(ConfirmationToken)
                    .where(ConfirmationToken.subscriber_id == subscriber.id,
                           ConfirmationToken.used_at.is_(None))
                    .values(used_at=now))


# -- stateless signed links -------------------------------------------------------------------------
# The mail worker builds one of each per recipient (100,000 per notice) without a query per link:
# an HMAC-SHA256 over the ids, the subscription's generation and the day the link was made, with a
# key derived from SECRET_KEY and the link's purpose.

_PREFERENCES, _UNSUBSCRIBE, _ADDRESS = b"preferences", b"unsubscribe", b"address"
_MAC_BYTES = 16
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,60}")
LINK_EPOCH = date(1970, 1, 1)
# Links mailed before they carried a generation and a date (ids only) read as generation 1, made on
# the day that changed: they keep working for LINK_TTL from then, unless the subscription was deleted.
LEGACY_ISSUED = date(2026, 12, 1)
_PREFERENCES_FORMATS = {16: ">QII", 8: ">Q"}
_UNSUBSCRIBE_FORMATS = {24: ">QQII", 16: ">QQ"}


@dataclass(frozen=True)
class Link:
    """What a signed link says: whose it is, for which topic (unsubscribe), of which generation, made when."""

    subscriber_id: int
    topic_id: int | None
    generation: int
    issued: date


@lru_cache(maxsize=8)
def _mac_base(secret: str, purpose: bytes) -> hmac.HMAC:
    key = hmac.new(secret.encode(), b"registry.subscriptions." + purpose, hashlib.sha256).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def sign_token(purpose: bytes, payload: bytes, secret: str | None = None) -> str:
    mac = _mac_base(secret or current_app.config["SECRET_KEY"], purpose).copy()
    mac.update(payload)
    return base64.urlsafe_b64encode(payload + mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode()


def unsign_token(purpose: bytes, token: str, formats: dict[int, str]) -> tuple | None:
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    layout = formats.get(len(blob) - _MAC_BYTES)
    if layout is None:
        return None
    payload = blob[:-_MAC_BYTES]
    mac = _mac_base(current_app.config["SECRET_KEY"], purpose).copy()
    mac.update(payload)
    return struct.unpack(layout, payload) if hmac.compare_digest(mac.digest()[:_MAC_BYTES],
                                                                 blob[-_MAC_BYTES:]) else None


def _day(issued: date | None) -> int:
    return ((issued or now_utc().date()) - LINK_EPOCH).days


def preferences_token(subscriber_id: int, generation: int, *, secret: str | None = None,
                      issued: date | None = None) -> str:
    """`secret` defaults to the app's; the mail worker passes it to sign many tokens in a row."""
    return sign_token(_PREFERENCES, struct.pack(">QII", subscriber_id, generation, _day(issued)), secret)


def unsubscribe_token(subscriber_id: int, topic_id: int, generation: int, *, secret: str | None = None,
                      issued: date | None = None) -> str:
    return sign_token(_UNSUBSCRIBE, struct.pack(">QQII", subscriber_id, topic_id, generation, _day(issued)),
                 secret)


def read_preferences_token(token: str) -> Link | None:
    values = unsign_token(_PREFERENCES, token, _PREFERENCES_FORMATS)
    if values is None:
        return None
    if len(values) == 1:
        return Link(values[0], None, 1, LEGACY_ISSUED)
    subscriber_id, generation, day = values
    return Link(subscriber_id, None, generation, LINK_EPOCH + timedelta(days=day))


def read_unsubscribe_token(token: str) -> Link | None:
    values = unsign_token(_UNSUBSCRIBE, token, _UNSUBSCRIBE_FORMATS)
    if values is None:
        return None
    if len(values) == 2:
        return Link(values[0], values[1], 1, LEGACY_ISSUED)
    subscriber_id, topic_id, generation, day = values
    return Link(subscriber_id, topic_id, generation, LINK_EPOCH + timedelta(days=day))


@dataclass(frozen=True)
class LinkCheck:
    state: str  # valid, expired, stale (an earlier subscription of the address) or unknown
    subscriber: Subscriber | None = None


def check_link(session: Session, link: Link | None, now: datetime | None = None) -> LinkCheck:
    """What a preferences or unsubscribe link may still do; reads, changes nothing."""
    subscriber = session.get(Subscriber, link.subscriber_id) if link is not None else None
    if subscriber is None:
        return LinkCheck("unknown")
    today = (now or now_utc()).astimezone(UTC).date()
    if today - link.issued > LINK_TTL:
        return LinkCheck("expired", subscriber)
    if link.generation != subscriber.generation:
        return LinkCheck("stale", subscriber)
    return LinkCheck("valid", subscriber)


def generations(session: Session, subscriber_ids: Iterable[int]) -> dict[int, int]:
    """Each subscriber's current generation, for signing a batch of links with one query per 1,000."""
    ids = sorted(set(subscriber_ids))
    postgresql = session.get_bind().dialect.name == "postgresql"
    found: dict[int, int] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        # One array parameter rather than 1,000: PostgreSQL answers in a quarter of the time (the
        # mail worker asks once per Mail Send request).
        wanted = (Subscriber.id == any_(literal(chunk, ARRAY(Integer))) if postgresql
                  else Subscriber.id.in_(chunk))
        found.update(session.execute(select(Subscriber.id, Subscriber.generation).where(wanted)).all())
    return found


def preferences_url(subscriber_id: int, generation: int, issued: date | None = None) -> str:
    """Absolute; needs only an app context. `issued` (default today) starts the link's 400 days."""
    return (f"{current_app.config['REGISTRY'].base_url}{PREFERENCES_PATH}"
            f"{preferences_token(subscriber_id, generation, issued=issued)}")


def unsubscribe_url(subscriber_id: int, topic_id: int, generation: int) -> str:
    """The RFC 8058 one-click URL for List-Unsubscribe; absolute, needs only an app context."""
    return (f"{current_app.config['REGISTRY'].base_url}{UNSUBSCRIBE_PATH}"
            f"{unsubscribe_token(subscriber_id, topic_id, generation)}")


# -- what was sent ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SentNotice:
    subject: str
    change_title: str
    created_at: datetime
    sent_at: datetime | None
    status: str
    last_event: str | None


def history(session: Session, subscriber: Subscriber, limit: int | None = 200) -> list[SentNotice]:
    """The notices sent to this subscriber's address, newest first."""
    mine = (Delivery.subscriber_id == subscriber.id) | (Delivery.email == subscriber.email)
    return _sent_notices(session, mine, limit)


def notices_to_address(session: Session, address: str, limit: int | None = None) -> list[SentNotice]:
    """Was this address told? Its deliveries under the address or, once erased, under its keyed hash
    (followed by the id of the subscriber it belonged to)."""
    address = normalise_email(address)
    told = (Delivery.email == address) | Delivery.email.startswith(retention.erased_address(address) + ":")
    return _sent_notices(session, told, limit)


def _sent_notices(session: Session, condition, limit: int | None) -> list[SentNotice]:
    rows = session.execute(
        select(Delivery, Notice, ChangeSet)
        .join(Notice, Notice.id == Delivery.notice_id)
        .join(ChangeSet, ChangeSet.id == Notice.change_set_id)
        .where(condition)
        .order_by(Notice.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return [SentNotice(notice.subject, change_set.title, notice.created_at, delivery.sent_at,
                       delivery.status, delivery.last_event)
            for delivery, notice, change_set in rows]


def personal_data(session: Session, subscriber: Subscriber) -> dict:
    """Everything kept about a subscriber, as the JSON the preferences page lets them download."""
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "source": subscriber.source,
        "name": subscriber.name,
        "company": subscriber.company,
        "created_at": moment(subscriber.created_at),
        "confirmed_at": moment(subscriber.confirmed_at),
        "deleted_at": moment(subscriber.deleted_at),
        "topics": [{"key": topic.key, "name": topic.name, "subscribed": on}
                   for topic, on in choices_of(session, subscriber)],
        "notices": [{"subject": item.subject, "change": item.change_title,
                     "queued_at": moment(item.created_at), "sent_at": moment(item.sent_at),
                     "status": item.status, "last_event": item.last_event}
                    for item in history(session, subscriber, limit=None)],
    }
