"""Import customer contacts from CSV: confirmed subscribers with Administrative on, row by row.

The file is UTF-8 CSV with a header row. `email` is required; `name` and `company` are optional;
other columns are ignored (and named in the report). Importing the same file again changes nothing.
A row is refused, with its reason, when its address is one the mail provider would refuse (see
domain.emails: one such address used to fail a whole Mail Send request of 1,000) or when a name
carries invisible formatting characters.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.domain import topics as rules
from registry.domain.clock import now_utc
from registry.domain.text import invisible_characters, invisible_message
from registry.models import Subscriber
from registry.services import subscriptions
from registry.services.subscriptions import SubscriptionError

MAX_BYTES = 5 * 1024 * 1024
COLUMNS = ("email", "name", "company")
TEXT_LIMIT = 200


class ContactsFileError(ValueError):
    """The file as a whole cannot be read; nothing was imported."""


@dataclass
class ImportReport:
    sha256: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    ignored_columns: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"sha256": self.sha256, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "rejected": len(self.rejected)}


def _decode(data: bytes) -> str:
    if not data.strip():
        raise ContactsFileError("The file is empty. Upload a CSV file with a header row and one "
                                "contact per line.")
    if b"\x00" in data:
        raise ContactsFileError("This looks like a binary file, not CSV text. Export the contacts as "
                                "CSV (UTF-8) and upload that.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ContactsFileError(
            f"The file is not UTF-8 text (byte {error.start + 1} cannot be read). Save it as "
            "CSV UTF-8 and upload it again.") from None


def _rows(text: str):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ContactsFileError("The file has no header row.")
        names = [h.strip().lower() for h in header]
        if "email" not in names:
            raise ContactsFileError("The first line must be a header naming the columns, with at least "
                                    "`email` (optionally `name` and `company`).")
        yield names
        for row in reader:
            yield reader.line_num, row
    except csv.Error as error:
        raise ContactsFileError(f"The CSV cannot be read near line {reader.line_num}: {error}.") from None


def import_contacts(session: Session, data: bytes, *, now: datetime | None = None) -> ImportReport:
    """Raises ContactsFileError for an unreadable file; otherwise reports each rejected row."""
    now = now or now_utc()
    if len(data) > MAX_BYTES:
        raise ContactsFileError("The file is larger than 5 MB. Split it into smaller files.")
    report = ImportReport(sha256=hashlib.sha256(data).hexdigest())
    rows = _rows(_decode(data))
    names = next(rows)
    report.ignored_columns = [n for n in names if n not in COLUMNS]
    index = {column: names.index(column) for column in COLUMNS if column in names}

    parsed: list[tuple[int, str, str, str]] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            report.rejected.append((line, f"{len(row)} fields where the header has {len(names)}"))
            continue
        cells = {column: (row[i] if i < len(row) else "") for column, i in index.items()}
        try:
            address = subscriptions.normalise_email(cells["email"])
        except SubscriptionError as error:
            report.rejected.append((line, f"{error.message} (got {cells['email'][:80]!r})"))
            continue
        if address in seen:
            report.rejected.append((line, f"{address} already appears on line {seen[address]}"))
            continue
        long = [c for c in ("name", "company") if len(cells.get(c, "")) > TEXT_LIMIT]
        if long:
            report.rejected.append((line, f"{long[0]} is longer than {TEXT_LIMIT} characters"))
            continue
        disguised = [(c, found) for c in ("name", "company")
                     if (found := invisible_characters(cells.get(c, "")))]
        if disguised:
            column, found = disguised[0]
            report.rejected.append((line, f"{column}: {invisible_message(found)}"))
            continue
        seen[address] = line
        parsed.append((line, address, subscriptions.clean_text(cells.get("name", ""), TEXT_LIMIT),
                       subscriptions.clean_text(cells.get("company", ""), TEXT_LIMIT)))

    existing = {}
    addresses = [address for _line, address, _n, _c in parsed]
    for start in range(0, len(addresses), 1000):
        chunk = addresses[start:start + 1000]
        existing.update((s.email, s) for s in session.scalars(
            select(Subscriber).where(Subscriber.email.in_(chunk))))
    topics = subscriptions.all_topics(session)
    defaults = rules.defaults([subscriptions.topic_rule(t) for t in topics])

    for line, address, name, company in parsed:
        subscriber = existing.get(address)
        if subscriber is None:
            subscriber = Subscriber(email=address, status="confirmed", source="import", name=name,
                                    company=company, created_at=now, confirmed_at=now)
            session.add(subscriber)
            session.flush()
            subscriptions.set_choices(session, subscriber, defaults, now)
            report.created += 1
            continue
        if subscriber.status == "deleted":
            report.rejected.append((line, f"{address} deleted their subscription; not re-added"))
            continue
        changed = False
        if subscriber.status != "confirmed":
            subscriber.status, subscriber.confirmed_at = "confirmed", now
            subscriptions.set_choices(session, subscriber, defaults, now)
            changed = True
        for attribute, value in (("name", name), ("company", company)):
            if value and getattr(subscriber, attribute) != value:
                setattr(subscriber, attribute, value)
                changed = True
        if changed:
            report.updated += 1
        else:
            report.unchanged += 1
    report.rejected.sort()
    session.flush()
    return report
