"""Sub-processors and their versioned records: each record is the full state after one change."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models.changes import ChangeSet
from registry.models.types import UTCDateTime


class RecordAction(StrEnum):
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"


class SubProcessor(db.Model):
    __tablename__ = "subprocessors"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    records: Mapped[list[SubProcessorRecord]] = relationship(
        back_populates="subprocessor", order_by="SubProcessorRecord.id"
    )


class SubProcessorRecord(db.Model):
    __tablename__ = "subprocessor_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    subprocessor_id: Mapped[int] = mapped_column(ForeignKey("subprocessors.id"), index=True)
    change_set_id: Mapped[int] = mapped_column(ForeignKey("change_sets.id"), index=True)
    action: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    legal_entity: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    transfer_mechanism: Mapped[str] = mapped_column(String(120))
    website: Mapped[str] = mapped_column(String(300), default="")
    feature: Mapped[str | None] = mapped_column(String(120))
    # What the DORA register of information asks of a provider (Implementing Regulation (EU) 2024/2956).
    lei: Mapped[str] = mapped_column(String(20), default="", server_default="")
    euid: Mapped[str] = mapped_column(String(80), default="", server_default="")
    latin_name: Mapped[str] = mapped_column(String(300), default="", server_default="")
    hq_country: Mapped[str] = mapped_column(String(2), default="", server_default="")
    parent_name: Mapped[str] = mapped_column(String(300), default="", server_default="")
    parent_lei: Mapped[str] = mapped_column(String(20), default="", server_default="")
    ict_service_type: Mapped[str] = mapped_column(String(3), default="", server_default="")
    # Its own sub-processors (domain/chain.Link as dicts). Part of the full state, like the lists above:
    # each record is a snapshot, so the chain is copied with every change and compared as a value.
    chain: Mapped[list[dict]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now_utc)

    subprocessor: Mapped[SubProcessor] = relationship(back_populates="records")
    change_set: Mapped[ChangeSet] = relationship(back_populates="subprocessor_records")
