"""Customer organisations: their email domains, contractual notice terms and designated contacts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.types import UTCDateTime


class Organisation(db.Model):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contract_reference: Mapped[str] = mapped_column(String(200), default="")
    # A contractual notice term that differs from the policies' (both set or both null).
    notice_length: Mapped[int | None]
    notice_unit: Mapped[str | None] = mapped_column(String(20))
    # Calendar days after the notice completes during which this customer may object.
    objection_days: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    domains: Mapped[list[OrganisationDomain]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", order_by="OrganisationDomain.domain")
    contacts: Mapped[list[OrganisationContact]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", order_by="OrganisationContact.email")


class OrganisationDomain(db.Model):
    """A domain belongs to one organisation at most: an address never falls under two contracts."""

    __tablename__ = "organisation_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    # Lower-case ASCII (IDNA) form.
    domain: Mapped[str] = mapped_column(String(253), unique=True)

    organisation: Mapped[Organisation] = relationship(back_populates="domains")


class OrganisationContact(db.Model):
    """An address that receives every material notice, subscribed or not."""

    __tablename__ = "organisation_contacts"
    __table_args__ = (UniqueConstraint("organisation_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    email: Mapped[str] = mapped_column(String(320))

    organisation: Mapped[Organisation] = relationship(back_populates="contacts")
