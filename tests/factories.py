"""Rows that several test modules build the same way."""

from sqlalchemy import select

from registry.extensions import db
from registry.models import Organisation, OrganisationContact, OrganisationDomain, Topic


def subscription_topics() -> dict[str, Topic]:
    """The Administrative topic (required) and one optional topic, committed."""
    rows = {"administrative": Topic(key="administrative", name="Administrative", is_administrative=True,
                                    position=0),
            "documents": Topic(key="documents", name="Document updates", position=1)}
    db.session.add_all(rows.values())
    db.session.commit()
    return rows


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
