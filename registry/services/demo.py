"""Load the demo company's registry into an empty database, dated relative to `now`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.demo import content
from registry.domain import objections as rules
from registry.domain.clock import start_of_day
from registry.models import (
    Delivery,
    Document,
    Notice,
    NoticePolicy,
    Objection,
    ObjectionEvent,
    Organisation,
    OrganisationContact,
    OrganisationDomain,
    SendAttempt,
    Subscriber,
    Topic,
    User,
)
from registry.notify import messages
from registry.notify.senders import MAX_PERSONALIZATIONS, Sender
from registry.services import accounts, audit, contacts, notices, objections, publishing, workflow

LEGAL_ZONE = ZoneInfo("Europe/Warsaw")
# The DPA promises 14 calendar days' notice of sub-processor changes, with a right to object.
SUBPROCESSOR_POLICY = {"length": 14, "unit": "calendar_days", "calendars": ["PL"],
                       "timezone": "Europe/Warsaw", "objection_days": 14}
# Demo staff, one per role. Fixed so that `make run` can print them each time it starts; a real
# deployment creates its accounts with `flask users create`.
STAFF = [
    ("editor@ferncastle.example", "editor", "demo-editor-password", None),
    ("approver@ferncastle.example", "approver", "demo-approver-password", "JBSWY3DPEHPK3PXPAPPROVER"),
    ("second.approver@ferncastle.example", "approver", "demo-approver-password", "JBSWY3DPEHPK3PXPSECONDAP"),
    ("admin@ferncastle.example", "admin", "demo-admin-password", "JBSWY3DPEHPK3PXPADMINXYZ"),
]
# Customer contacts imported from the CRM: they receive Administrative notices under their contract.
CONTACTS = """email,name,company
dpo@northwind-logistics.example,Ada Kowalska,Northwind Logistics
privacy@bluefin-health.example,Marek Nowak,Bluefin Health
legal@orchard-retail.example,Jo Smith,Orchard Retail
security@kettle-analytics.example,Sam Lee,Kettle Analytics
compliance@harbor-bank.example,Ines Duarte,Harbor Bank
it@meadow-schools.example,Tomasz Wiśniewski,Meadow Schools
"""
# Customer organisations: one whose DPA promises 30 calendar days' notice and names a contact who gets
# every material notice; one on the standard terms.
ORGANISATIONS = [
    ("Northwind Logistics", "DPA NW-2025-014", ("northwind-logistics.example",), 30, 21,
     ("legal@northwind-logistics.example",)),
    ("Harbor Bank", "Master agreement HB-7", ("harbor-bank.example",), None, None,
     ("outsourcing@harbor-bank.example",)),
]
TOPICS = [
    ("administrative", "Administrative", "Material changes to our documents and sub-processors. "
     "Required while you are subscribed.", True, True),
    ("subprocessors", "Sub-processor changes", "Additions, changes and removals.", False, True),
    ("documents", "Document updates", "New versions of our legal documents.", False, True),
    ("non-material", "Non-material updates", "Wording fixes and clarifications.", False, False),
]


def has_content(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Document)))


def _read(path: str) -> str:
    return resources.files("registry.demo").joinpath("documents", path).read_text("utf-8")


def _at(now: datetime, days: int) -> datetime:
    """Midnight in the legal time zone, `days` days before today there: when changes take effect.

    Counted in legal days, not back from `now` in UTC: across a change of summer time, "40 days ago"
    at 22:30 UTC fell on a later legal day than "25 days ago" did, and the demo's dates depended on
    the hour it was loaded."""
    return start_of_day(now.astimezone(LEGAL_ZONE).date() - timedelta(days=days), LEGAL_ZONE.key)


def load(session: Session, now: datetime, outbox: Sender | None = None) -> str:
    """The demo registry. `outbox`: where the mails of its notices go, as the worker would have sent
    them, so that a newcomer can read one at once (the development outbox; never a real provider)."""
    policies = {"subprocessors": NoticePolicy(key="subprocessors", name="Sub-processor list",
                                              **SUBPROCESSOR_POLICY)}
    documents = {}
    for position, spec in enumerate(content.DOCUMENTS):
        policy = NoticePolicy(key=spec["slug"], name=spec["title"], **spec["notice"])
        policies[spec["slug"]] = policy
        documents[spec["slug"]] = Document(slug=spec["slug"], title=spec["title"],
                                           description=spec["description"], position=position,
                                           notice_policy=policy)
    session.add_all([*policies.values(), *documents.values()])
    for position, (key, name, description, admin, default_on) in enumerate(TOPICS):
        session.add(Topic(key=key, name=name, description=description, is_administrative=admin,
                          is_default_on=default_on, position=position))
    for email, role, password, totp_secret in STAFF:
        session.add(User(email=email, role=role, password_hash=accounts.hash_password(password),
                         totp_secret=totp_secret))
    session.flush()

    # Group everything that happened on one day into one change set, as legal staff would.
    by_day: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    for spec in content.DOCUMENTS:
        for version in spec["versions"]:
            by_day[version["effective_days_ago"]].append(("document", {**version,
                                                                       "slug": spec["slug"]}))
    for spec in content.SUBPROCESSORS:
        for index, event in enumerate(spec["history"]):
            by_day[event["days_ago"]].append(
                ("subprocessor", {**event, "slug": spec["slug"], "is_new": index == 0}))
    for slug, days_ago, summary, chain in content.CHAINS:
        by_day[days_ago].append(("subprocessor", {"days_ago": days_ago, "summary": summary, "slug": slug,
                                                  "fields": {"chain": chain}, "is_new": False}))

    count = 0
    for days_ago in sorted(by_day, reverse=True):
        items = by_day[days_ago]
        material = any(item.get("is_material", True) for _kind, item in items)
        summary = (" ".join(i["summary"] for _k, i in items) if len(items) <= 3 else
                   "The first published versions of our legal documents and sub-processor list.")
        change_set = publishing.create_change_set(session, title=_title(items), summary=summary,
                                                  is_material=material)
        for kind, item in items:
            _draft(session, change_set, kind, item, documents)
        effective = _at(now, days_ago)
        notice = _notice_start(session, change_set, effective)
        publishing.publish(session, change_set, published_at=notice,
                           notice_completed_at=notice, effective_at=effective,
                           actor="demo", now=now)
        count += 1

    report = contacts.import_contacts(session, CONTACTS.encode(), now=now - timedelta(days=70))
    _withdrawn_change(session, documents, now, outbox)

    upcoming = content.UPCOMING
    change_set = publishing.create_change_set(session, title=upcoming["title"],
                                              summary=upcoming["summary"], is_material=True)
    _draft(session, change_set, "document", upcoming["document_version"], documents)
    _draft(session, change_set, "subprocessor",
           {**upcoming["subprocessor"]["history"][0], "slug": upcoming["subprocessor"]["slug"],
            "is_new": True},
           documents)
    notice = (now - timedelta(days=upcoming["notice_started_days_ago"])).replace(microsecond=0)
    effective = _at(now, -upcoming["effective_in_days"])
    publishing.publish(session, change_set, published_at=notice, notice_completed_at=None,
                       effective_at=effective, effective_new_customers_at=notice, actor="demo", now=now)
    _deliver_notice(session, change_set, notice, now, outbox)
    _objection_in_discussion(session, change_set, notice, now)
    # After the history: the contracts apply to changes scheduled from now on.
    for name, reference, domains, length, objection_days, designated in ORGANISATIONS:
        session.add(Organisation(name=name, contract_reference=reference, notice_length=length,
                                 notice_unit="calendar_days" if length else None,
                                 objection_days=objection_days, created_at=now, updated_at=now,
                                 domains=[OrganisationDomain(domain=d) for d in domains],
                                 contacts=[OrganisationContact(email=c) for c in designated]))
    session.flush()
    hooks = _webhook_endpoints(session, now)
    return (f"{hooks}{len(content.SUBPROCESSORS) + 1} sub-processors, {len(documents)} documents, "
            f"{count + 2} change sets (one withdrawn), {report.created} subscribers, "
            f"{len(ORGANISATIONS)} customer organisations, {len(STAFF)} staff accounts, "
            "1 objection in discussion")


def _notice_start(session: Session, change_set, effective: datetime) -> datetime:
    """The latest day before `effective` (a day at a time) whose notice every governing policy accepts.

    A notice given then ends by the effective date, and so does its objection window (policies never
    allow a longer window than their notice), as it did for the real company.
    """
    start = effective - timedelta(days=1)
    while publishing.earliest_effective_for(session, change_set, start) > effective:
        start -= timedelta(days=1)
    return start


def _withdrawn_change(session: Session, documents: dict, now: datetime, outbox: Sender | None) -> None:
    """An addition announced, then withdrawn with a reason before its date: both notices accepted."""
    spec = content.WITHDRAWN
    entry = spec["subprocessor"]
    change_set = publishing.create_change_set(session, title=spec["title"], summary=spec["summary"],
                                              is_material=True)
    _draft(session, change_set, "subprocessor",
           {**entry["history"][0], "slug": entry["slug"], "is_new": True}, documents)
    # At 10:00 legal time on its day, not at the time of day the demo is loaded: loaded at 22:26 UTC,
    # the notice fell on the legal day after, too late for the planned date, which then moved.
    notice = _at(now, spec["notice_started_days_ago"]) + timedelta(hours=10)
    publishing.publish(session, change_set, published_at=notice, notice_completed_at=None,
                       effective_at=_at(now, spec["planned_effective_days_ago"]), actor="demo", now=notice)
    # Told as of then: the change was still in its notice period when it was withdrawn.
    _deliver_notice(session, change_set, notice, notice + timedelta(minutes=2), outbox)
    withdrawn_at = (now - timedelta(days=spec["withdrawn_days_ago"])).replace(microsecond=0)
    approver = session.scalar(select(User).where(User.email == STAFF[1][0]))
    workflow.withdraw(session, change_set, actor=approver, note=spec["reason"], now=withdrawn_at)
    withdrawal = session.scalar(select(Notice).where(Notice.change_set_id == change_set.id,
                                                     Notice.kind == "withdrawal"))
    _accept_all(session, withdrawal, withdrawn_at + timedelta(minutes=1), outbox)
    notices.settle(session, [withdrawal.id], now=withdrawn_at + timedelta(minutes=2))


def _deliver_notice(session: Session, change_set, notice_at: datetime, now: datetime,
                    outbox: Sender | None) -> None:
    """The upcoming change's notice as the worker and SendGrid would have left it: all accepted.

    Its times are in the past; the audit rows that record it are dated now, when the demo loads.
    """
    notice = notices.start_notice(session, change_set, now=notice_at)
    accepted = notice_at + timedelta(minutes=1)
    _accept_all(session, notice, accepted, outbox)
    publishing.complete_notice(session, change_set, completed_at=accepted, now=now)


def _objection_in_discussion(session: Session, change_set, notice_at: datetime, now: datetime) -> None:
    """Northwind's DPO objected to the new SMS provider from the notice's link; staff acknowledged it and
    offered to discuss an alternative. Written as rows (the demo mails nobody), each step audited."""
    demo = content.OBJECTION
    received = notice_at + timedelta(hours=demo["received_hours_after_notice"])
    items = [f"subprocessor:{record.id}" for record in change_set.subprocessor_records]
    year = received.astimezone(UTC).year
    number = objections.next_number(session, year)
    objection = Objection(
        change_set_id=change_set.id, kind="objection", status=rules.IN_DISCUSSION, year=year, number=number,
        reference=rules.reference(year, number), email=demo["email"], organisation=demo["organisation"],
        contact_name=demo["contact_name"], role="controller", items=items, grounds=demo["grounds"],
        asks_alternative=True, source="email", created_at=received, received_at=received, version=3)
    session.add(objection)
    session.flush()
    approver = STAFF[1][0]
    steps = [(received, objection.email, "received", rules.DRAFT, rules.RECEIVED, "", True)]
    for hours, action, before, after, body, public in demo["steps"]:
        steps.append((received + timedelta(hours=hours), approver, action, before, after, body, public))
    for at, actor, action, before, after, body, public in steps:
        session.add(ObjectionEvent(objection_id=objection.id, at=at, actor=actor, action=action,
                                   from_status=before, to_status=after, body=body, is_public=public))
        audit.record(session, actor=actor, action=f"objection.{after or action}", object_type="objection",
                     object_id=objection.reference, after={"status": after, "body": body}, at=now)
    objection.answered_at = steps[-1][0]


def _accept_all(session: Session, notice: Notice, accepted: datetime, outbox: Sender | None) -> None:
    """Every delivery of `notice` accepted by the provider at `accepted` and delivered just after.

    Each keeps the message it was sent with, as the worker records it, so the staff pages can show
    it; with an `outbox`, the mails are there to read as well.
    """
    deliveries = list(session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)
                                      .order_by(Delivery.id)))
    batch = messages.notice_batch_message(session, notice, messages.current_plan(session, notice.id))
    messages.store_body(session, batch, now=accepted)
    recipients = messages.recipients((d.id, d.email, d.subscriber_id, d.topic_id) for d in deliveries)
    for start in range(0, len(deliveries), MAX_PERSONALIZATIONS):
        request = deliveries[start:start + MAX_PERSONALIZATIONS]
        token = f"demo-{notice.id}-{start // MAX_PERSONALIZATIONS}"
        for delivery in request:
            delivery.status, delivery.sent_at, delivery.attempts = "sent", accepted, 1
            delivery.claim_token, delivery.claimed_at, delivery.provider_message_id = token, accepted, token
            delivery.last_event, delivery.last_event_at = "delivered", accepted + timedelta(seconds=20)
        session.add(SendAttempt(
            claim_token=token, notice_id=notice.id, first_delivery_id=request[0].id,
            last_delivery_id=request[-1].id, recipients=len(request), started_at=accepted,
            message_sha256=batch.body_sha256,
            personalizations=messages.personalizations(recipients[start:start + MAX_PERSONALIZATIONS])))
    notice.dispatch_completed_at = accepted
    if outbox is not None and recipients:
        outbox.send(batch, recipients)


def _title(items: list[tuple[str, dict]]) -> str:
    titles = {spec["slug"]: spec["title"] for spec in content.DOCUMENTS}
    if len(items) > 3:
        documents = sum(kind == "document" for kind, _item in items)
        return (f"Trust center launch: {documents} documents and "
                f"{len(items) - documents} sub-processors published")
    names = []
    for kind, item in items:
        if kind == "document":
            names.append(f"New version of the {titles[item['slug']]}")
        elif item.get("removed"):
            names.append(f"{_vendor_name(item)} removed")
        elif item["is_new"]:
            names.append(f"{_vendor_name(item)} added")
        else:
            names.append(f"{_vendor_name(item)} updated")
    return "; ".join(names)


def _vendor_name(item: dict) -> str:
    """The vendor's name before this change, and its current one when it has been renamed since,
    to go before a verb: "Metricula, now Clearsight Analytics," (updated)."""
    spec = next(s for s in content.SUBPROCESSORS if s["slug"] == item["slug"])
    named = [(event["days_ago"], event["fields"]["name"]) for event in spec["history"]
             if "name" in event.get("fields", {})]
    then = ([name for days, name in named if days > item["days_ago"]] or [named[0][1]])[-1]
    current = named[-1][1]
    return then if then == current else f"{then}, now {current},"


def _draft(session: Session, change_set, kind: str, item: dict, documents: dict) -> None:
    if kind == "document":
        publishing.draft_document_version(
            session, change_set, documents[item["slug"]], source_md=_read(item["file"]),
            summary=item["summary"], is_material=item["is_material"])
    elif item.get("removed"):
        publishing.draft_subprocessor_change(session, change_set, item["slug"], "remove",
                                             summary=item["summary"])
    else:
        fields = item["fields"]
        if item["is_new"]:
            fields = {**fields, **content.DORA.get(item["slug"], {})}
        action = "add" if item["is_new"] else "change"
        publishing.draft_subprocessor_change(session, change_set, item["slug"], action,
                                             fields=fields, summary=item["summary"])


def _webhook_endpoints(session: Session, now: datetime) -> str:
    """Two webhook endpoints where loopback is allowed (development): one answered by the development
    receiver (it verifies the signature), one at a port nothing listens on, so its log shows retries."""
    from flask import current_app

    from registry.services import endpoints

    settings = current_app.config["REGISTRY"]
    if not settings.endpoints_allow_private:
        return ""
    subscriber = session.scalar(select(Subscriber).where(Subscriber.status == "confirmed")
                                .order_by(Subscriber.id))
    organisation = session.scalar(select(Organisation).order_by(Organisation.id))
    endpoints.create(session, endpoints.Owner(subscriber=subscriber),
                     url=f"{settings.base_url}/subscriptions/dev-receiver",
                     topic_keys=["subprocessors", "documents"], actor="demo", now=now)
    endpoints.create(session, endpoints.Owner(organisation=organisation),
                     url="http://127.0.0.1:9/registry-events", topic_keys=["administrative"],
                     actor="demo", now=now)
    return "2 webhook endpoints (one failing), "
