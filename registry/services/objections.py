"""Customers object to (or approve) an announced change; staff acknowledge, discuss and resolve it.

An objection from a notice's signed link is received at once (the mail proved the address); one from
the public form is a draft until the single-use link mailed to the address is opened. Every step is an
event on the objection's timeline and an entry in the audit log.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from registry.domain import objections as rules
from registry.domain.clock import now_utc
from registry.domain.deadlines import deadline_words
from registry.models import ChangeSet, ChangeStatus, Delivery, Notice, Objection, ObjectionEvent, User
from registry.models.objections import ObjectionSequence
from registry.services import audit, endpoints, inbox, mail, publishing
from registry.services.sql import dialect_insert

# Named here and not imported: subscriptions keeps its signing helpers private to its module, and these
# links use the same construction (an HMAC keyed from SECRET_KEY and the link's purpose).
from registry.services.subscriptions import LINK_EPOCH, sign_token, unsign_token

CONFIRM_TTL = timedelta(hours=24)
CONFIRM_TEMPLATE = "objection_confirm"
RECEIVED_TEMPLATE = "objection_received"
UPDATE_TEMPLATE = "objection_update"
# URL paths of the objections blueprint: the mail worker has no request to build them from.
NOTICE_PATH = "/objections/from-notice/"
CONFIRM_PATH = "/objections/confirm/"
STATUS_PATH = "/objections/status/"
CUSTOMER = "customer"

_NOTICE, _STATUS = b"objection-notice", b"objection-status"
_NOTICE_FORMATS = {12: ">QI"}
_STATUS_FORMATS = {8: ">Q"}


class ObjectionError(ValueError):
    """Input or a move that cannot be accepted; `field` names the form field it belongs to."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class Closed(ObjectionError):
    """The change takes no more objections: its window ended (or it never had one, or was withdrawn)."""

    def __init__(self, message: str):
        super().__init__("", message)


class Stale(ObjectionError):
    """Someone else moved the objection since the page was read."""

    def __init__(self):
        super().__init__("", "Someone else changed this objection since you opened the page. "
                             "Read its timeline again and repeat your step if it is still needed.")


# -- the window ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    is_open: bool
    deadline: datetime | None
    # Said when closed: when it closed (or why there is none) and whom to write to instead.
    closed_message: str


def contact_address() -> str:
    settings = current_app.config["REGISTRY"]
    return settings.privacy_contact or settings.mail_from


def window(change_set: ChangeSet, now: datetime) -> Window:
    settings = current_app.config["REGISTRY"]
    deadline = change_set.objection_deadline_at
    announced = change_set.published_at is not None and change_set.published_at <= now
    withdrawn = change_set.status == ChangeStatus.WITHDRAWN
    if rules.is_open(deadline, now, announced=announced, withdrawn=withdrawn):
        return Window(True, deadline, "")
    contact = contact_address()
    if withdrawn:
        why = "This change was withdrawn, so there is nothing left to object to."
    elif deadline is None:
        why = "This change has no objection period."
    else:
        words = deadline_words(deadline, settings.legal_timezone)
        why = f"Objections to this change closed at the end of {words.day} ({words.local}; {words.utc})."
    return Window(False, deadline, f"{why} To raise anything about it, write to {settings.company_name} "
                                   f"at {contact}.")


def items_of(change_set: ChangeSet) -> list[tuple[str, str]]:
    """The items a customer may object to: (key, label), each sub-processor change and document version."""
    words = {"add": "New sub-processor", "change": "Sub-processor changed", "remove": "Sub-processor removed"}
    items = [(f"subprocessor:{record.id}", f"{words.get(record.action, 'Sub-processor')}: {record.name}")
             for record in change_set.subprocessor_records]
    items += [(f"document:{version.id}",
               f"{version.document.title}, version {version.number}" if version.number
               else version.document.title)
              for version in change_set.document_versions]
    return items


def announced_change_set(session: Session, change_set_id: int, now: datetime) -> ChangeSet | None:
    """A change set the public may see: announced (its notice started), not a draft."""
    change_set = session.get(ChangeSet, change_set_id)
    if change_set is None or change_set.published_at is None or change_set.published_at > now:
        return None
    return change_set


# -- signed links ---------------------------------------------------------------------------------------

def notice_token(delivery_id: int, *, secret: str | None = None, issued=None) -> str:
    """The per-recipient link of a notice: names the delivery, so the address is the one mailed."""
    day = ((issued or now_utc().date()) - LINK_EPOCH).days
    return sign_token(_NOTICE, struct.pack(">QI", delivery_id, day), secret)


def notice_url(delivery_id: int, *, secret: str | None = None, base_url: str | None = None,
               issued=None) -> str:
    base = base_url if base_url is not None else current_app.config["REGISTRY"].base_url
    return f"{base}{NOTICE_PATH}{notice_token(delivery_id, secret=secret, issued=issued)}"


@dataclass(frozen=True)
class NoticeLink:
    delivery: Delivery
    change_set: ChangeSet


def read_notice_token(session: Session, token: str) -> NoticeLink | None:
    """The delivery and change set of a notice link, or None for a link that was never ours or whose
    address has since been erased (a hashed address cannot receive an acknowledgement)."""
    values = unsign_token(_NOTICE, token, _NOTICE_FORMATS)
    if values is None:
        return None
    delivery = session.get(Delivery, values[0])
    if delivery is None or "@" not in delivery.email or ":" in delivery.email:
        return None
    notice = session.get(Notice, delivery.notice_id)
    return NoticeLink(delivery, session.get(ChangeSet, notice.change_set_id))


def status_token(objection_id: int) -> str:
    return sign_token(_STATUS, struct.pack(">Q", objection_id))


def status_url(objection: Objection) -> str:
    return f"{current_app.config['REGISTRY'].base_url}{STATUS_PATH}{status_token(objection.id)}"


def read_status_token(session: Session, token: str) -> Objection | None:
    values = unsign_token(_STATUS, token, _STATUS_FORMATS)
    if values is None:
        return None
    objection = session.get(Objection, values[0])
    return objection if objection is not None and objection.status != rules.DRAFT else None


# -- customers ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    kind: str
    organisation: str
    contact_name: str
    role: str
    items: list[str]
    grounds: str
    asks_alternative: bool


def _check(change_set: ChangeSet, submission: Submission, now: datetime) -> None:
    state = window(change_set, now)
    if not state.is_open:
        raise Closed(state.closed_message)
    if submission.kind not in rules.KINDS:
        raise ObjectionError("kind", "Choose whether you object or approve.")
    if submission.role not in rules.ROLES:
        raise ObjectionError("role", "Choose your role: controller, or processor acting for a controller.")
    known = {key for key, _label in items_of(change_set)}
    if set(submission.items) - known:
        raise ObjectionError("items", "Choose items from the list; this form may be out of date.")
    if submission.kind == "objection" and not submission.items:
        raise ObjectionError("items", "Choose what you object to.")
    if submission.kind == "objection" and not submission.grounds.strip():
        raise ObjectionError("grounds", "Give the grounds of your objection.")
    if len(submission.grounds) > rules.MAX_GROUNDS:
        raise ObjectionError("grounds", f"Keep the grounds under {rules.MAX_GROUNDS:,} characters.")


def _new(change_set: ChangeSet, submission: Submission, email: str, source: str, now: datetime) -> Objection:
    known = [key for key, _label in items_of(change_set)]
    # An approval with nothing ticked approves the whole change.
    items = [key for key in known if key in submission.items]
    if not items and submission.kind == "approval":
        items = known
    return Objection(change_set_id=change_set.id, kind=submission.kind, status=rules.DRAFT, email=email,
                     organisation=submission.organisation, contact_name=submission.contact_name,
                     role=submission.role, items=items, grounds=submission.grounds.strip(),
                     asks_alternative=submission.asks_alternative and submission.kind == "objection",
                     source=source, created_at=now)


def submit_from_notice(session: Session, link: NoticeLink, submission: Submission,
                       now: datetime | None = None) -> Objection:
    """From a notice's signed link: the mail proved the address, so it is received at once."""
    now = now or now_utc()
    _check(link.change_set, submission, now)
    objection = _new(link.change_set, submission, link.delivery.email, "email", now)
    objection.status = rules.RECEIVED
    session.add(objection)
    session.flush()
    _receive(session, objection, now)
    return objection


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def submit_from_form(session: Session, change_set: ChangeSet, email: str, submission: Submission,
                     now: datetime | None = None) -> Objection:
    """From the public page: a draft, and a single-use link mailed to the address to confirm it."""
    from registry.services.subscriptions import SubscriptionError, normalise_email

    now = now or now_utc()
    try:
        address = normalise_email(email)
    except SubscriptionError as error:
        raise ObjectionError("email", error.message) from None
    _check(change_set, submission, now)
    raw = new_token()
    objection = _new(change_set, submission, address, "form", now)
    objection.confirm_token_hash, objection.confirm_expires_at = _hash(raw), now + CONFIRM_TTL
    session.add(objection)
    session.flush()
    settings = current_app.config["REGISTRY"]
    mail.queue(session, to=address, template=CONFIRM_TEMPLATE, now=now, context={
        "company_name": settings.company_name, "kind": objection.kind, "title": change_set.title,
        "organisation": objection.organisation, "confirm_url": f"{settings.base_url}{CONFIRM_PATH}{raw}",
        "expires_at": objection.confirm_expires_at.isoformat(),
    })
    return objection


@dataclass(frozen=True)
class Confirmation:
    state: str  # valid, used, expired or unknown
    objection: Objection | None = None


def check_confirmation(session: Session, raw: str, now: datetime | None = None) -> Confirmation:
    """What a confirmation link would do; changes nothing (a GET may call it)."""
    now = now or now_utc()
    if not raw or len(raw) > 200:
        return Confirmation("unknown")
    objection = session.scalar(select(Objection).where(Objection.confirm_token_hash == _hash(raw)))
    if objection is None:
        return Confirmation("unknown")
    if objection.status != rules.DRAFT:
        return Confirmation("used", objection)
    if objection.confirm_expires_at <= now:
        return Confirmation("expired", objection)
    return Confirmation("valid", objection)


def confirm(session: Session, raw: str, now: datetime | None = None) -> Confirmation:
    """Receive a draft whose link was opened in time. It counts as sent when it was submitted (before the
    deadline, or the form would have refused it); a conditional UPDATE makes two clicks receive it once."""
    now = now or now_utc()
    check = check_confirmation(session, raw, now)
    if check.state != "valid":
        return check
    objection = check.objection
    claimed = session.execute(
        update(Objection).where(Objection.id == objection.id, Objection.status == rules.DRAFT)
        .values(status=rules.RECEIVED, version=Objection.version + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return Confirmation("used", objection)
    session.refresh(objection)
    _receive(session, objection, now)
    return check


def next_number(session: Session, year: int) -> int:
    """This year's next reference number, by one upsert: PostgreSQL serialises concurrent upserts of
    the year's row, SQLite its writers, so two objections received at once never share a number."""
    table = ObjectionSequence.__table__
    statement = dialect_insert(session)(table).values(year=year, last=1)
    statement = statement.on_conflict_do_update(index_elements=[table.c.year],
                                                set_={"last": table.c.last + 1})
    return session.scalar(statement.returning(table.c.last))


def _receive(session: Session, objection: Objection, now: datetime) -> None:
    """Number an objection that has just become received, record it, and acknowledge it."""
    year = now.astimezone(UTC).year
    number = next_number(session, year)
    objection.year, objection.number = year, number
    objection.reference = rules.reference(year, number)
    objection.received_at = now
    _event(session, objection, actor=objection.email, action="received", from_status=rules.DRAFT,
           to_status=rules.RECEIVED, now=now)
    session.flush()
    audit.record(session, actor=objection.email, action=f"{objection.kind}.received", object_type="objection",
                 object_id=objection.reference, at=now,
                 after={"change_set_id": objection.change_set_id, "items": objection.items,
                        "source": objection.source, "organisation": objection.organisation})
    _mail(session, objection, RECEIVED_TEMPLATE, now)
    inbox.objection_received(session, objection, now=now)


def expire_drafts(session: Session, now: datetime | None = None) -> int:
    """Unconfirmed drafts past their link: removed with everything they said (it was never sent)."""
    now = now or now_utc()
    stale = list(session.scalars(select(Objection.id).where(Objection.status == rules.DRAFT,
                                                             Objection.confirm_expires_at <= now)))
    if stale:
        session.execute(ObjectionEvent.__table__.delete().where(ObjectionEvent.objection_id.in_(stale)))
        session.execute(Objection.__table__.delete().where(Objection.id.in_(stale)))
    return len(stale)


# -- staff ----------------------------------------------------------------------------------------------

def _event(session: Session, objection: Objection, *, actor: str, action: str, now: datetime,
           actor_id: int | None = None, from_status: str | None = None, to_status: str | None = None,
           outcome: str | None = None, body: str = "", is_public: bool = True) -> ObjectionEvent:
    event = ObjectionEvent(objection_id=objection.id, at=now, actor=actor, actor_id=actor_id, action=action,
                           from_status=from_status, to_status=to_status, outcome=outcome, body=body,
                           is_public=is_public)
    session.add(event)
    return event


def move(session: Session, objection: Objection, *, to: str, version: int, actor: User,
         outcome: str | None = None, reply: str = "", now: datetime | None = None) -> None:
    """Move the objection on, if nobody else has since `version` (one conditional UPDATE decides)."""
    now = now or now_utc()
    try:
        rules.check_transition(objection.status, to, outcome or None)
    except rules.TransitionError as error:
        raise ObjectionError("to", str(error)) from None
    before = {"status": objection.status, "outcome": objection.outcome}
    values = {"status": to, "version": Objection.version + 1, "answered_at": now}
    if to == rules.RESOLVED:
        values |= {"outcome": outcome, "resolved_at": now}
    moved = session.execute(
        update(Objection).where(Objection.id == objection.id, Objection.version == version,
                                Objection.status == objection.status)
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        raise Stale()
    session.refresh(objection)
    _event(session, objection, actor=actor.email, actor_id=actor.id, action="moved",
           from_status=before["status"], to_status=to, outcome=outcome or None, body=reply, now=now)
    session.flush()
    audit.record(session, actor=actor.email, actor_id=actor.id, action=f"objection.{to}",
                 object_type="objection", object_id=objection.reference, before=before, at=now,
                 after={"status": to, "outcome": objection.outcome, "reply": reply})
    _mail(session, objection, UPDATE_TEMPLATE, now, reply=reply)
    endpoints.objection_event(session, objection, now=now)


def add_note(session: Session, objection: Objection, *, body: str, actor: User, is_public: bool,
             now: datetime | None = None) -> None:
    """An internal note, or a reply the customer is mailed and sees on their status page."""
    now = now or now_utc()
    if not body.strip():
        raise ObjectionError("body", "Write the note or reply.")
    if objection.status == rules.DRAFT:
        raise ObjectionError("body", "This objection has not been confirmed by its sender yet.")
    _event(session, objection, actor=actor.email, actor_id=actor.id, action="reply" if is_public else "note",
           body=body, is_public=is_public, now=now)
    if is_public:
        objection.answered_at = now
    session.flush()
    audit.record(session, actor=actor.email, actor_id=actor.id,
                 action="objection.reply" if is_public else "objection.note", object_type="objection",
                 object_id=objection.reference, after={"body": body}, at=now)
    if is_public:
        _mail(session, objection, UPDATE_TEMPLATE, now, reply=body)
        endpoints.objection_event(session, objection, now=now)


def _mail(session: Session, objection: Objection, template: str, now: datetime, reply: str = "") -> None:
    settings = current_app.config["REGISTRY"]
    change_set = session.get(ChangeSet, objection.change_set_id)
    mail.queue(session, to=objection.email, template=template, now=now, context={
        "company_name": settings.company_name, "reference": objection.reference, "kind": objection.kind,
        "title": change_set.title, "organisation": objection.organisation,
        "state": rules.STATES[objection.status],
        "outcome": rules.OUTCOMES.get(objection.outcome or "", ""), "reply": reply,
        "status_url": status_url(objection), "contact": contact_address(),
    })


# -- reading ------------------------------------------------------------------------------------------

def received(session: Session):
    return select(Objection).where(Objection.status != rules.DRAFT)


def register(session: Session, *, status: str | None = None,
             change_set_id: int | None = None) -> list[Objection]:
    query = received(session)
    if status:
        query = query.where(Objection.status == status)
    if change_set_id:
        query = query.where(Objection.change_set_id == change_set_id)
    return list(session.scalars(query.order_by(Objection.received_at.desc(), Objection.id.desc())))


def open_count(session: Session, change_set: ChangeSet) -> int:
    """Objections (not approvals) on the change still waiting for an outcome."""
    return open_counts(session, [change_set.id]).get(change_set.id, 0)


def open_counts(session: Session, change_set_ids: Iterable[int]) -> dict[int, int]:
    ids = list(change_set_ids)
    if not ids:
        return {}
    return dict(session.execute(
        select(Objection.change_set_id, func.count()).where(
            Objection.change_set_id.in_(ids), Objection.kind == "objection",
            Objection.status.in_(rules.OPEN_STATES))
        .group_by(Objection.change_set_id)).all())


REMINDED = "reminded"


def was_reminded(session: Session, objection: Objection) -> bool:
    return session.scalar(select(ObjectionEvent.id).where(
        ObjectionEvent.objection_id == objection.id, ObjectionEvent.action == REMINDED).limit(1)) is not None


def record_reminder(session: Session, objection: Objection, *, now: datetime) -> None:
    """Approvers were reminded that the objection is unanswered: an internal step of its timeline."""
    _event(session, objection, actor="system", action=REMINDED, now=now, is_public=False,
           body="Unanswered for 2 business days: approvers reminded by mail.")
    session.flush()


def unanswered(session: Session, now: datetime | None = None) -> list[Objection]:
    """Received or acknowledged objections with no staff answer (a move or a reply) for 2 business days
    in the legal calendar: the calendars of the policies that govern their change."""
    now = now or now_utc()
    zone = current_app.config["REGISTRY"].legal_timezone
    waiting = session.scalars(received(session).where(
        Objection.kind == "objection", Objection.status.in_((rules.RECEIVED, rules.ACKNOWLEDGED)))
        .order_by(Objection.received_at))
    calendars: dict[int, tuple[str, ...]] = {}
    late = []
    for objection in waiting:
        if objection.change_set_id not in calendars:
            change_set = session.get(ChangeSet, objection.change_set_id)
            policies = publishing.policies_for(session, change_set)
            calendars[objection.change_set_id] = tuple(sorted(
                {code for policy in policies for code in policy.calendars}))
        since = objection.answered_at or objection.received_at
        if rules.unanswered_since(since, zone, calendars[objection.change_set_id]) <= now:
            late.append(objection)
    return late


def timeline(objection: Objection, *, public: bool) -> list[ObjectionEvent]:
    return [event for event in objection.events if event.is_public or not public]


def item_labels(session: Session, objection: Objection) -> list[str]:
    labels = dict(items_of(session.get(ChangeSet, objection.change_set_id)))
    return [labels.get(key, key) for key in objection.items]


EXPORT_FIELDS = ["reference", "kind", "status", "outcome", "organisation", "contact_name", "email", "role",
                 "items", "grounds", "asks_alternative", "source", "received_at", "resolved_at"]


def export_rows(session: Session, change_set: ChangeSet) -> list[dict]:
    rows = []
    for objection in register(session, change_set_id=change_set.id):
        rows.append({
            "reference": objection.reference, "kind": objection.kind, "status": objection.status,
            "outcome": objection.outcome, "organisation": objection.organisation,
            "contact_name": objection.contact_name, "email": objection.email, "role": objection.role,
            "items": item_labels(session, objection), "grounds": objection.grounds,
            "asks_alternative": objection.asks_alternative, "source": objection.source,
            "received_at": objection.received_at.isoformat() if objection.received_at else None,
            "resolved_at": objection.resolved_at.isoformat() if objection.resolved_at else None,
            "timeline": [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "to": e.to_status,
                          "outcome": e.outcome, "body": e.body, "public": e.is_public}
                         for e in objection.events],
        })
    return rows


def _cell(value) -> str:
    """A spreadsheet never runs a cell as a formula: text starting with = + - @ gets a leading quote."""
    text = "; ".join(value) if isinstance(value, list) else "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([_cell(row[name]) for name in EXPORT_FIELDS])
    return buffer.getvalue()


def for_proof(session: Session, change_set: ChangeSet) -> list[dict]:
    """What the proof of notice lists: each objection and approval received, its state and outcome."""
    return [{"reference": o.reference, "kind": o.kind, "organisation": o.organisation,
             "received_at": o.received_at, "status": rules.STATES[o.status],
             "outcome": rules.OUTCOMES.get(o.outcome or "", "")}
            for o in register(session, change_set_id=change_set.id)]
