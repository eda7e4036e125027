"""Rows that several test modules build the same way."""

from sqlalchemy import select

from registry.extensions import db
from registry.models import (
    Document,
    NoticePolicy,
    Organisation,
    OrganisationContact,
    OrganisationDomain,
    Topic,
)


def subscription_topics() -> dict[str, Topic]:
    """The Administrative topic (required) and one optional topic, committed."""
    rows = {"administrative": Topic(key="administrative", name="Administrative", is_administrative=True,
                                    position=0),
            "documents": Topic(key="documents", name="Document updates", position=1)}
    db.session.add_all(rows.values())
    db.session.commit()
    return rows


def announced_change(now, *, deadline_in_days: float = 10, title: str = "New SMS provider"):
    """A material change in notice: one new sub-processor and one document version, its objection
    deadline `deadline_in_days` from `now` (negative: already passed), committed."""
    from datetime import timedelta

    from registry.models import (
        ChangeSet,
        ChangeStatus,
        Document,
        DocumentVersion,
        NoticePolicy,
        SubProcessor,
        SubProcessorRecord,
    )

    policy = NoticePolicy(key=f"policy-{title[:20]}", name="DPA", length=14, unit="calendar_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=14)
    document = Document(slug=f"dpa-{abs(hash(title)) % 10**6}", title="Data Processing Agreement",
                        notice_policy=policy)
    from zoneinfo import ZoneInfo

    from registry.domain.clock import start_of_day

    # Deadlines fall on a legal midnight (the end of the last day included).
    day = (now + timedelta(days=deadline_in_days)).astimezone(ZoneInfo("Europe/Warsaw")).date()
    deadline = start_of_day(day, "Europe/Warsaw")
    change_set = ChangeSet(title=title, summary="We add an SMS provider.", status=ChangeStatus.IN_NOTICE,
                           is_material=True, published_at=now - timedelta(days=3),
                           notice_completed_at=now - timedelta(days=3),
                           objection_deadline_at=deadline, effective_at=deadline + timedelta(days=1))
    record = SubProcessorRecord(
        subprocessor=SubProcessor(slug=f"sms-{abs(hash(title)) % 10**6}"), change_set=change_set,
        action="add", name="Textwave SMS", legal_entity="Textwave sp. z o.o.", address="Kraków",
        contact="privacy@textwave.example", purpose="SMS", transfer_mechanism="EEA", countries=["PL"])
    version = DocumentVersion(document=document, change_set=change_set, number=2, source_md="# DPA",
                              summary="Longer notice.")
    db.session.add_all([policy, document, change_set, record, version])
    db.session.commit()
    return change_set


def organisation(name: str = "Northwind Bank", domains: tuple[str, ...] = ("northwind-bank.example",), *,
                 notice_length: int | None = 30, notice_unit: str | None = "calendar_days",
                 objection_days: int | None = None, contacts: tuple[str, ...] = ()) -> Organisation:
    """A customer organisation, committed (by default: a 30-calendar-day contractual notice term)."""
    row = Organisation(name=name, contract_reference="DPA 2026-7", notice_length=notice_length,
                       notice_unit=notice_unit, objection_days=objection_days,
                       domains=[OrganisationDomain(domain=d) for d in domains],
                       contacts=[OrganisationContact(email=c) for c in contacts])
    db.session.add(row)
    db.session.commit()
    return row


def without_organisations() -> None:
    """Take the demo's customer organisations out, for tests of the notice policies alone (their 30-day
    contract would push every date out), committed."""
    for row in db.session.scalars(select(Organisation)):
        db.session.delete(row)
    db.session.commit()


def terms_document() -> Document:
    """The Terms of Service under a 30-calendar-day policy with a 14-day objection window, committed."""
    policy = NoticePolicy(key="p", name="Policy", length=30, unit="calendar_days", calendars=[],
                          timezone="Europe/Warsaw", objection_days=14)
    doc = Document(slug="terms", title="Terms of Service", notice_policy=policy)
    db.session.add_all([policy, doc])
    db.session.commit()
    return doc
