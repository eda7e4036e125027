"""Render emails from their template folders, build a notice's one body for its current plan and its
per-recipient parts, store what was sent, and rebuild the mail a recipient got."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

import css_inline
from flask import current_app, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain.chain import chain_delta, chain_from_json, chain_text, service_label
from registry.domain.subprocessors import FIELD_LABELS
from registry.models import ChangeSet, ChangeStatus, Delivery, MessageBody, Notice, SubProcessorRecord, Topic
from registry.notify.senders import personalize
from registry.services import reading
from registry.services.sql import dialect_insert
from registry.web import country_name

_INLINER = css_inline.CSSInliner()

# Placeholders in a notice body that SendGrid replaces per recipient (substitutions).
PREFERENCES_KEY = "-preferences_url-"
UNSUBSCRIBE_KEY = "-unsubscribe_url-"
# The recipient's signed link to the objection form (services.objections.notice_url).
OBJECTION_KEY = "-objection_url-"
MARKERS = (PREFERENCES_KEY, UNSUBSCRIBE_KEY, OBJECTION_KEY)
# SendGrid replaces a key wherever it appears, so staff text must never contain one. Inside staff text
# each marker's name gets a fullwidth low line for its underscore: it reads the same, it is visible (not
# one of the invisible characters the forms refuse), and the name can no longer be completed into a key
# by the hyphens around it. The templates never write these names themselves, so no key can form across
# the edge of a staff value either.
_NEUTRAL = {marker.strip("-"): marker.strip("-").replace("_", "\uff3f") for marker in MARKERS}
# Templates of notices by kind.
NOTICE_TEMPLATES = {"announcement": "notice", "date_moved": "notice_date_moved",
                    "withdrawal": "notice_withdrawn"}

# What a notice of a new sub-processor states about it, with the labels the site uses.
NEW_ENTRY_FIELDS = ("legal_entity", "purpose", "countries", "transfer_mechanism")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(template: str, context: dict) -> RenderedEmail:
    """Needs an app context. The subject is one line; the HTML gets its <style> inlined for mail clients."""
    folder = f"email/{template}"
    context = _PREPARE[template](context) if template in _PREPARE else context
    subject = " ".join(render_template(f"{folder}/subject.txt", **context).split())
    text = render_template(f"{folder}/body.txt", **context).strip() + "\n"
    html = _INLINER.inline(render_template(f"{folder}/body.html", **context))
    return RenderedEmail(subject=subject, text=text, html=html)


@dataclass(frozen=True)
class Plan:
    """What a notice's mail states about its change: a body is only ever sent for the plan it shows."""

    kind: str
    status: str
    effective_at: datetime | None
    effective_new_customers_at: datetime | None
    objection_deadline_at: datetime | None
    withdrawn_at: datetime | None

    @property
    def is_withheld(self) -> bool:
        """A withdrawn change is announced no further, and its date moves no longer matter."""
        return self.status == ChangeStatus.WITHDRAWN and self.kind != "withdrawal"


@dataclass(frozen=True)
class BatchMessage:
    """One notice body shared by every recipient; the two keys are replaced per recipient."""

    subject: str
    text: str
    html: str
    body_sha256: str
    # The plan the body states (None for single mails); the worker renders again when it changes.
    plan: Plan | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    email: str
    substitutions: dict[str, str]
    headers: dict[str, str]
    custom_args: dict[str, str]


def body_sha256(subject: str, text: str, html: str) -> str:
    """The fingerprint proof of notice shows: the three parts as sent, before per-recipient links."""
    digest = hashlib.sha256()
    for part in (subject, text, html):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def moment(value: datetime | None, timezone: str) -> dict[str, str] | None:
    """A date as the email shows it: in the legal time zone and in UTC."""
    if value is None:
        return None
    local, utc = value.astimezone(ZoneInfo(timezone)), value.astimezone(UTC)
    return {"local": f"{local.day} {local:%B %Y, %H:%M %Z}", "utc": f"{utc:%Y-%m-%d %H:%M} UTC",
            "iso": utc.isoformat()}


def absolute_urls(endpoints: list[tuple[str, dict]]) -> list[str]:
    """Absolute URLs from settings.base_url, with only an app context (the worker has no request)."""
    base_url = current_app.config["REGISTRY"].base_url
    with current_app.test_request_context("/", base_url=base_url):
        return [url_for(endpoint, _external=True, **values) for endpoint, values in endpoints]


def neutralise(value):
    """Staff text (strings, nested in lists and dicts) with no substitution key left in it."""
    if isinstance(value, str):
        for name, neutral in _NEUTRAL.items():
            value = value.replace(name, neutral)
        return value
    if isinstance(value, list):
        return [neutralise(item) for item in value]
    if isinstance(value, dict):
        return {key: neutralise(item) for key, item in value.items()}
    return value


def current_plan(session: Session, notice_id: int) -> Plan:
    """The notice's plan as committed now, its change set row share-locked until the transaction ends.

    The lock is what makes a moved date and a request race-free: a move (which updates the row) either
    committed before, and the body shows the new plan, or waits until the request's deliveries are
    committed as "sending", and then tells them of the move.
    """
    row = session.execute(
        select(Notice.kind, ChangeSet.status, ChangeSet.effective_at, ChangeSet.effective_new_customers_at,
               ChangeSet.objection_deadline_at, ChangeSet.withdrawn_at)
        .join(ChangeSet, ChangeSet.id == Notice.change_set_id).where(Notice.id == notice_id)
        .with_for_update(read=True, of=ChangeSet)
    ).one()
    return Plan(*row)


def field_text(name: str, value) -> str:
    """A sub-processor's field as a reader reads it: country names, not codes; lists joined."""
    if name == "feature":
        return value or "All customers"
    if name == "countries":
        return ", ".join(country_name(code) for code in value) or "none"
    if name == "chain":
        return chain_text(chain_from_json(value))
    if name == "ict_service_type":
        return service_label(value) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(value) or "none"
    return value or "none"


def _new_text(name: str, old, new) -> str:
    """The new value as a notice shows it; for the chain, what changed in it ("added X (US, hosting)")."""
    if name == "chain":
        return chain_delta(chain_from_json(old), chain_from_json(new))
    return field_text(name, new)


def record_details(session: Session, record: SubProcessorRecord) -> dict:
    """What a notice says about one sub-processor record: for a new one, who and where it is; for a
    changed one, each field that changed, old and new."""
    if record.action == "add":
        return {"details": [{"label": FIELD_LABELS[name], "value": field_text(name, getattr(record, name))}
                            for name in NEW_ENTRY_FIELDS], "changes": []}
    changes = []
    if record.action == "change" and (previous := reading.previous_record(session, record)) is not None:
        changes = [{"label": label, "old": field_text(name, getattr(previous, name)),
                    "new": _new_text(name, getattr(previous, name), getattr(record, name))}
                   for name, label in FIELD_LABELS.items()
                   if getattr(previous, name) != getattr(record, name)]
    return {"details": [], "changes": changes}


def notice_context(session: Session, notice: Notice) -> dict:
    """Everything the notice templates show, read once per notice and plan; staff text neutralised."""
    settings = current_app.config["REGISTRY"]
    change_set = session.get(ChangeSet, notice.change_set_id)
    topic = session.get(Topic, notice.topic_id) if notice.topic_id else None
    links: list[tuple[str, dict]] = [("public.changes", {})]
    documents = []
    for version in change_set.document_versions:
        number = version.number or 1
        before = reading.predecessor(session, version)
        documents.append({"title": version.document.title, "number": number, "summary": version.summary,
                          "is_material": version.is_material, "previous": before.number if before else None})
        if before is not None:
            links.append(("documents.compare", {"slug": version.document.slug, "from": before.number,
                                                "to": number, "view": "redline"}))
        else:
            links.append(("documents.version", {"slug": version.document.slug, "number": number}))
    subprocessors = []
    for record in change_set.subprocessor_records:
        subprocessors.append({"action": record.action, "name": record.name, "purpose": record.purpose,
                              "summary": record.summary, **record_details(session, record)})
        links.append(("subprocessors.entry", {"slug": record.subprocessor.slug}))
    urls = absolute_urls(links)
    home, item_urls = urls[0], urls[1:]
    for item, url in zip(documents + subprocessors, item_urls, strict=True):
        item["url"] = url
    zone = settings.legal_timezone
    staff_text = neutralise({
        "company": settings.company_name,
        "title": change_set.title,
        "summary": change_set.summary,
        "topic": topic.name if topic else "",
        "documents": documents,
        "subprocessors": subprocessors,
        "reason": notice.reason,
    })
    return {
        **staff_text,
        "is_material": change_set.is_material,
        "is_administrative": bool(topic and topic.is_administrative) or change_set.is_material,
        "effective": moment(change_set.effective_at, zone),
        "moved_from": moment(notice.moved_from_at, zone),
        "effective_new_customers": moment(change_set.effective_new_customers_at, zone),
        "objection_deadline": moment(change_set.objection_deadline_at, zone),
        "objection_deadline_at": (change_set.objection_deadline_at
                                  if change_set.status != ChangeStatus.WITHDRAWN else None),
        "objection_url": OBJECTION_KEY,
        "timezone": zone,
        "announced": moment(change_set.published_at, zone),
        "withdrawn": moment(change_set.withdrawn_at, zone),
        "registry_url": home,
        "preferences_url": PREFERENCES_KEY,
        "unsubscribe_url": UNSUBSCRIBE_KEY,
    }


def _moved_context(context: dict) -> dict:
    """Approvers read the move in the legal time zone and in UTC, with a link to the notice's progress."""
    zone = current_app.config["REGISTRY"].legal_timezone
    values = {"change_set_id": context["change_set_id"]}
    proof, change_set = absolute_urls([("notices.proof", values), ("admin.change_set", values)])
    return {**context, "company": current_app.config["REGISTRY"].company_name, "timezone": zone,
            "before_at": moment(datetime.fromisoformat(context["before"]), zone),
            "after_at": moment(datetime.fromisoformat(context["after"]), zone), "proof_url": proof,
            "change_set_url": change_set}


def _failed_context(context: dict) -> dict:
    (proof,) = absolute_urls([("notices.proof", {"change_set_id": context["change_set_id"]})])
    return {**context, "company": current_app.config["REGISTRY"].company_name, "proof_url": proof}


# Emails whose queued context (JSON: ids and strings) needs more before it can be shown.
_PREPARE = {"effective_date_moved": _moved_context, "dispatch_failed": _failed_context}


def notice_batch_message(session: Session, notice: Notice, plan: Plan | None = None) -> BatchMessage:
    """Render a notice once for all its recipients, for the given (current) plan; the notice keeps the
    hash of the latest body, each delivery the one it was sent with."""
    rendered = render_email(NOTICE_TEMPLATES[notice.kind], notice_context(session, notice))
    digest = body_sha256(rendered.subject, rendered.text, rendered.html)
    if notice.body_sha256 != digest:
        notice.body_sha256 = digest
    return BatchMessage(subject=rendered.subject, text=rendered.text, html=rendered.html, body_sha256=digest,
                        plan=plan)


def store_body(session: Session, batch: BatchMessage, *, now: datetime) -> None:
    """Keep the message exactly as handed to the provider; the same message is stored once."""
    session.execute(dialect_insert(session)(MessageBody).values(
        sha256=batch.body_sha256, subject=batch.subject, text=batch.text, html=batch.html, created_at=now,
    ).on_conflict_do_nothing(index_elements=["sha256"]))


def personalizations(recipients: list[Recipient]) -> dict[str, dict]:
    """What a request carries for each recipient, as its send_attempts row keeps it: the values the
    provider substitutes into the message and the recipient's own headers, by delivery id."""
    return {r.custom_args["delivery_id"]: {"substitutions": r.substitutions, "headers": r.headers}
            for r in recipients}


@dataclass(frozen=True)
class SentValues:
    """One recipient's part of a request (an entry of `personalizations`)."""

    substitutions: dict[str, str]
    headers: dict[str, str]

    @classmethod
    def from_json(cls, value: dict | None) -> SentValues:
        value = value or {}
        return cls(substitutions=dict(value.get("substitutions") or {}),
                   headers=dict(value.get("headers") or {}))


def personalized(body: MessageBody, sent: SentValues) -> RenderedEmail:
    """Subject, text and HTML as this recipient received them: what the provider made of the request."""
    values = sent.substitutions
    return RenderedEmail(subject=personalize(body.subject, values), text=personalize(body.text, values),
                         html=personalize(body.html, values))


def rebuild_message(body: MessageBody, delivery: Delivery, sent: SentValues) -> EmailMessage:
    """The mail this recipient was sent: the stored message with their values, as an RFC 5322 message.

    From, To, Subject and the per-recipient headers are what the request carried; Date is when the
    provider accepted it and Message-ID names the provider's id of the request.
    """
    settings = current_app.config["REGISTRY"]
    mail = personalized(body, sent)
    message = EmailMessage(policy=EML_POLICY)
    message["From"] = (formataddr((settings.mail_from_name, settings.mail_from))
                       if settings.mail_from_name else settings.mail_from)
    message["To"] = delivery.email
    message["Subject"] = mail.subject
    if delivery.sent_at is not None:
        message["Date"] = format_datetime(delivery.sent_at.astimezone(UTC), usegmt=True)
    if delivery.provider_message_id:
        domain = settings.mail_from.rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{delivery.provider_message_id}.{delivery.id}@{domain}>"
        message["X-Message-Id"] = delivery.provider_message_id
    for name, value in sent.headers.items():
        message[name] = value
    message["X-Registry-Delivery-Id"] = str(delivery.id)
    message["X-Registry-Message-Sha256"] = body.sha256
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


# Long header lines stay whole: a folded List-Unsubscribe URL would become RFC 2047 encoded words.
EML_POLICY = SMTP.clone(max_line_length=998)


def recipient(delivery_id: int, email: str, subscriber_id: int | None, topic_id: int | None) -> Recipient:
    """One recipient's links and headers (RFC 8058 one-click unsubscribe)."""
    return recipients([(delivery_id, email, subscriber_id, topic_id)])[0]


def recipients(rows: Iterable[tuple[int, str, int | None, int | None]]) -> list[Recipient]:
    """Recipients for (delivery id, email, subscriber id, topic id) rows; reads the settings once, and
    the subscribers' link generations with one query per 1,000: the links are HMACs, not rows."""
    from registry.extensions import db
    from registry.services import objections, subscriptions

    rows = list(rows)
    generation = subscriptions.generations(db.session, (row[2] for row in rows if row[2] is not None))
    settings, secret = current_app.config["REGISTRY"], current_app.config["SECRET_KEY"]
    preferences_base = settings.base_url + subscriptions.PREFERENCES_PATH
    unsubscribe_base = settings.base_url + subscriptions.UNSUBSCRIBE_PATH
    mailto = settings.unsubscribe_mailto
    signing = {"secret": secret, "issued": datetime.now(UTC).date()}
    made = []
    for delivery_id, email, subscriber_id, topic_id in rows:
        if subscriber_id is None:
            # An organisation's designated contact: no subscription to manage or end, so the links lead
            # to the registry and no List-Unsubscribe header is offered.
            made.append(Recipient(email=email, headers={}, custom_args={"delivery_id": str(delivery_id)},
                                  substitutions={PREFERENCES_KEY: settings.base_url + "/",
                                                 UNSUBSCRIBE_KEY: settings.base_url + "/"}))
            continue
        # A subscriber gone from the database gets links that open nothing (generation 0 is never current).
        current = generation.get(subscriber_id, 0)
        preferences = preferences_base + subscriptions.preferences_token(subscriber_id, current, **signing)
        if topic_id is None:
            # No topic to turn off (a material notice without an Administrative topic): the page.
            unsubscribe = preferences
            headers = {"List-Unsubscribe": f"<{preferences}>"}
        else:
            token = subscriptions.unsubscribe_token(subscriber_id, topic_id, current, **signing)
            unsubscribe = unsubscribe_base + token
            headers = {"List-Unsubscribe": f"<{unsubscribe}>, <mailto:{mailto}?subject=unsubscribe-{token}>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        objection = objections.notice_url(delivery_id, base_url=settings.base_url, **signing)
        made.append(Recipient(email=email, headers=headers, custom_args={"delivery_id": str(delivery_id)},
                              substitutions={PREFERENCES_KEY: preferences, UNSUBSCRIBE_KEY: unsubscribe,
                                             OBJECTION_KEY: objection}))
    return made
