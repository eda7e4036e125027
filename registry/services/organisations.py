"""Customer organisations: keep them, find their members, and read their contractual terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from registry.domain import organisations as rules
from registry.domain.clock import now_utc
from registry.domain.emails import InvalidAddress, normalise_address
from registry.models import (
    ChangeSet,
    Delivery,
    Notice,
    Organisation,
    OrganisationContact,
    OrganisationDomain,
    Subscriber,
    User,
)
from registry.services import audit


class OrganisationError(ValueError):
    """An organisation cannot be saved as asked; `field` names the input it concerns."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message)
        self.field = field


def parse_contacts(text: str) -> list[str]:
    """Designated contacts, one per line or comma-separated, as the mail provider accepts them."""
    found: list[str] = []
    for raw in (text or "").replace(",", "\n").split():
        try:
            address = normalise_address(raw)
        except InvalidAddress as problem:
            raise OrganisationError(f"{raw[:80]!r}: {problem.message}", field="contacts") from None
        if address not in found:
            found.append(address)
    if len(found) > rules.MAX_CONTACTS:
        raise OrganisationError(f"At most {rules.MAX_CONTACTS} designated contacts.", field="contacts")
    return found


def _snapshot(organisation: Organisation) -> dict:
    return {"name": organisation.name, "contract_reference": organisation.contract_reference,
            "domains": [d.domain for d in organisation.domains],
            "contacts": [c.email for c in organisation.contacts],
            "notice_length": organisation.notice_length, "notice_unit": organisation.notice_unit,
            "objection_days": organisation.objection_days}


def save(session: Session, organisation: Organisation | None, *, name: str, contract_reference: str,
         domains: list[str], contacts: list[str], notice_length: int | None, notice_unit: str | None,
         objection_days: int | None, actor: User, now: datetime | None = None) -> Organisation:
    """Create (organisation None) or update one. Domains arrive normalised (rules.parse_domains)."""
    now = now or now_utc()
    problems = rules.term_problems(notice_length, notice_unit or None, objection_days)
    if problems:
        field, message = next(iter(problems.items()))
        raise OrganisationError(message, field=field)
    if not domains:
        raise OrganisationError("Give at least one email domain, e.g. example.com.", field="domains")
    own_id = organisation.id if organisation else None
    named = session.scalar(select(Organisation).where(func.lower(Organisation.name) == name.lower(),
                                                      Organisation.id != own_id if own_id else True))
    if named is not None:
        raise OrganisationError(f"There is already an organisation named {named.name}.", field="name")
    taken = session.execute(select(OrganisationDomain.domain, Organisation.name)
                            .join(OrganisationDomain.organisation)
                            .where(OrganisationDomain.domain.in_(domains),
                                   Organisation.id != own_id if own_id else True)).first()
    if taken is not None:
        raise OrganisationError(f"The domain {taken.domain} already belongs to {taken.name}.",
                                field="domains")
    before = _snapshot(organisation) if organisation else None
    if organisation is None:
        organisation = Organisation(created_at=now)
        session.add(organisation)
    organisation.name, organisation.contract_reference = name, contract_reference
    organisation.notice_length, organisation.notice_unit = notice_length, notice_unit or None
    organisation.objection_days, organisation.updated_at = objection_days, now
    kept = {d.domain: d for d in organisation.domains}
    organisation.domains = [kept.get(d) or OrganisationDomain(domain=d) for d in domains]
    kept_contacts = {c.email: c for c in organisation.contacts}
    organisation.contacts = [kept_contacts.get(c) or OrganisationContact(email=c) for c in contacts]
    # Removed domains leave before the new ones arrive: a domain moved between rows stays unique.
    session.flush()
    audit.record(session, actor=actor.email, actor_id=actor.id,
                 action="organisation.update" if before else "organisation.create",
                 object_type="organisation", object_id=organisation.id, at=now,
                 before=before, after=_snapshot(organisation))
    session.flush()
    return organisation


def delete(session: Session, organisation: Organisation, *, actor: User, now: datetime | None = None) -> None:
    audit.record(session, actor=actor.email, actor_id=actor.id, action="organisation.delete",
                 object_type="organisation", object_id=organisation.id, at=now or now_utc(),
                 before=_snapshot(organisation))
    from registry.services import endpoints

    endpoints.remove_owned(session, endpoints.Owner(organisation=organisation))
    session.delete(organisation)
    session.flush()


def all_organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def domain_owners(session: Session) -> dict[str, int]:
    return {domain: owner for domain, owner in session.execute(
        select(OrganisationDomain.domain, OrganisationDomain.organisation_id))}


def _under(column, domains: list[str]):
    """SQL: an address column in one of the domains or their subdomains (validated domains hold no
    LIKE wildcards: letters, digits, hyphens and dots only)."""
    lowered = func.lower(column)
    return or_(*(lowered.like(f"%@{d}") for d in domains), *(lowered.like(f"%.{d}") for d in domains))


def members(session: Session, organisation: Organisation, *,
            limit: int = 100) -> tuple[int, list[Subscriber]]:
    """Confirmed subscribers who belong to the organisation (the most specific domain decides), with
    their number; the first `limit` by address."""
    domains = [d.domain for d in organisation.domains]
    if not domains:
        return 0, []
    owners = domain_owners(session)
    candidates = session.scalars(select(Subscriber).where(
        Subscriber.status == "confirmed", Subscriber.deleted_at.is_(None), _under(Subscriber.email, domains))
        .order_by(Subscriber.email))
    found = [s for s in candidates if rules.owner(s.email, owners) == organisation.id]
    return len(found), found[:limit]


def _recorded_by(announced_at: datetime | None):
    """A contract binds the notices given while it is on record: a change announced before an organisation
    was recorded keeps the dates its notice gave (None: not announced yet, every contract applies)."""
    return True if announced_at is None else Organisation.created_at <= announced_at


def terms(session: Session, announced_at: datetime | None = None) -> list[tuple[Organisation, rules.Term]]:
    """Every organisation with a contractual notice term that binds a change announced at `announced_at`."""
    return [(o, rules.Term(o.notice_length, o.notice_unit)) for o in session.scalars(
        select(Organisation).where(Organisation.notice_length.is_not(None), _recorded_by(announced_at))
        .order_by(Organisation.name))]


def objection_windows(session: Session,
                      announced_at: datetime | None = None) -> list[tuple[Organisation, int]]:
    return [(o, o.objection_days) for o in session.scalars(
        select(Organisation).where(Organisation.objection_days.is_not(None), _recorded_by(announced_at))
        .order_by(Organisation.name))]


def designated_contacts(session: Session) -> list[str]:
    """Every designated contact's address once: they receive every material notice."""
    return sorted(set(session.scalars(select(OrganisationContact.email))))


@dataclass(frozen=True)
class Settlement:
    """Whether notice to an organisation is complete: each of its deliveries settled."""

    organisation: Organisation
    deliveries: int
    settled: int

    @property
    def is_complete(self) -> bool:
        return self.settled == self.deliveries


def settlement(session: Session, change_set: ChangeSet) -> list[Settlement]:
    """Per organisation, the announcement deliveries to its members and designated contacts and how many
    settled (sent, suppressed or failed for good); organisations nobody was sent to are left out."""
    from registry.services.notices import SETTLED  # notices reads publishing, which reads this module

    result = []
    owners = domain_owners(session)
    announced = select(Notice.id).where(Notice.change_set_id == change_set.id, Notice.kind == "announcement")
    for organisation in all_organisations(session):
        domains = [d.domain for d in organisation.domains]
        contacts = [c.email for c in organisation.contacts]
        conditions = []
        if domains:
            conditions.append(_under(Delivery.email, domains))
        if contacts:
            conditions.append(func.lower(Delivery.email).in_(contacts))
        if not conditions:
            continue
        rows = session.execute(select(Delivery.email, Delivery.status).where(
            Delivery.notice_id.in_(announced), or_(*conditions)))
        statuses = [status for email, status in rows
                    if email.lower() in contacts or rules.owner(email, owners) == organisation.id]
        if statuses:
            result.append(Settlement(organisation, len(statuses), sum(s in SETTLED for s in statuses)))
    return result
