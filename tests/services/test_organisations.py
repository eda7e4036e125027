"""Customer organisations: their contractual terms set the earliest date, their contacts get material
notices, their members are computed, and notice to each counts as complete when its deliveries settle."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import Delivery, Notice, Organisation, Subscriber
from registry.services import organisations, publishing, workflow
from registry.services.organisations import OrganisationError
from registry.services.workflow import WorkflowError
from tests import factories
from tests.services.test_workflow import NOW, PRIVACY_EARLIEST, WARSAW, approved, build_registry, schedule

# 30 calendar days counted from the day after 18 December 2026 (Warsaw): the last is 17 January.
CONTRACT_EARLIEST = datetime(2027, 1, 18, 0, 0, tzinfo=WARSAW)


@pytest.fixture
def world(app):
    return build_registry(db.session)


@pytest.fixture
def people(make_user):
    return {"editor": make_user("editor"), "approver": make_user("approver"),
            "second": make_user("approver")}


def test_a_30_day_contract_moves_the_earliest_date_and_is_named(world, people):
    change_set = approved(people, world)
    before = publishing.earliest_explained(db.session, change_set, NOW)
    assert before.at == PRIVACY_EARLIEST and before.organisation is None

    factories.organisation("Northwind Bank", notice_length=30, notice_unit="calendar_days")
    earliest = publishing.earliest_explained(db.session, change_set, NOW)
    assert earliest.at == CONTRACT_EARLIEST
    assert earliest.organisation == "Northwind Bank" and earliest.term == "30 calendar days"
    assert earliest.reason == "Northwind Bank's contract (30 calendar days)"

    with pytest.raises(WorkflowError) as refused:
        schedule(change_set, people["second"], PRIVACY_EARLIEST)
    assert "(set by Northwind Bank's contract (30 calendar days))" in str(refused.value)
    assert "18 January 2027" in str(refused.value)
    db.session.rollback()
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    assert change_set.effective_at == CONTRACT_EARLIEST


def test_a_contract_recorded_after_the_announcement_keeps_the_dates_given(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["second"], PRIVACY_EARLIEST)
    later = factories.organisation(notice_length=30)
    later.created_at = NOW + timedelta(hours=1)
    db.session.commit()
    assert publishing.earliest_explained(db.session, change_set, NOW).at == PRIVACY_EARLIEST
    later.created_at = NOW - timedelta(hours=1)
    assert publishing.earliest_explained(db.session, change_set, NOW).at == CONTRACT_EARLIEST


def test_the_longest_term_wins_and_a_shorter_one_names_nobody(world, people):
    change_set = approved(people, world)
    factories.organisation("Short Term Ltd", ("short.example",), notice_length=2)
    assert publishing.earliest_explained(db.session, change_set, NOW).organisation is None
    factories.organisation("Northwind Bank", notice_length=30)
    factories.organisation("Contoso", ("contoso.example",), notice_length=20, notice_unit="business_days")
    earliest = publishing.earliest_explained(db.session, change_set, NOW)
    # 20 Polish business days after 18 December 2026 (Christmas, New Year, Epiphany off) end on 21 January.
    assert earliest.organisation == "Contoso" and earliest.term == "20 business days"
    assert earliest.reason == "Contoso's contract (20 business days)"
    factories.organisation("Harbor Bank Holdings", ("hbh.example",), notice_length=40)
    assert publishing.earliest_explained(db.session, change_set, NOW).reason == (
        "Harbor Bank Holdings' contract (40 calendar days)")
    assert earliest.at == datetime(2027, 1, 22, 0, 0, tzinfo=WARSAW)


def test_a_contract_does_not_hold_back_a_non_material_change(world, people):
    factories.organisation(notice_length=30)
    change_set = approved(people, world, material=False)
    earliest = publishing.earliest_explained(db.session, change_set, NOW)
    assert earliest.at == NOW and earliest.organisation is None


def test_a_notice_completing_later_moves_the_date_by_the_contract(world, people):
    """complete_notice honours the contract too: the date moves if the period would end after it."""
    factories.organisation(notice_length=30)
    change_set = approved(people, world)
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    db.session.commit()
    later = NOW + timedelta(days=2)
    publishing.complete_notice(db.session, change_set, completed_at=later, now=later)
    assert change_set.effective_at == CONTRACT_EARLIEST + timedelta(days=2)


def test_an_objection_window_extends_the_deadline_up_to_the_effective_date(world, people):
    factories.organisation(notice_length=30, objection_days=21)
    change_set = approved(people, world)
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    # The privacy policy has no objection window; the contract's 21 days end on 8 January 2027.
    assert change_set.objection_deadline_at == datetime(2027, 1, 9, 0, 0, tzinfo=WARSAW)


def test_designated_contacts_receive_material_notices_once(world, people):
    factories.organisation(contacts=("dpo@northwind-bank.example", "customer@example.com"))
    change_set = approved(people, world)
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    notice = db.session.scalar(select(Notice).where(Notice.change_set_id == change_set.id))
    rows = {d.email: d for d in db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id))}
    # customer@example.com is a subscriber too: one delivery, as a subscriber.
    assert sorted(rows) == ["customer@example.com", "dpo@northwind-bank.example"]
    assert rows["dpo@northwind-bank.example"].subscriber_id is None
    assert rows["customer@example.com"].subscriber_id is not None


def test_designated_contacts_are_not_sent_non_material_notices(world, people):
    factories.organisation(notice_length=None, notice_unit=None, contacts=("dpo@northwind-bank.example",))
    change_set = approved(people, world, material=False)
    schedule(change_set, people["second"], NOW)
    emails = db.session.scalars(select(Delivery.email).join(Notice, Notice.id == Delivery.notice_id)
                                .where(Notice.change_set_id == change_set.id)).all()
    assert "dpo@northwind-bank.example" not in emails


def test_a_contact_told_of_a_change_is_told_of_its_withdrawal(world, people):
    factories.organisation(contacts=("dpo@northwind-bank.example",))
    change_set = approved(people, world)
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    db.session.execute(Delivery.__table__.update().values(status="sent"))
    workflow.withdraw(db.session, change_set, actor=people["second"], note="Vendor dropped", now=NOW)
    withdrawal = db.session.scalar(select(Notice).where(Notice.change_set_id == change_set.id,
                                                        Notice.kind == "withdrawal"))
    emails = sorted(db.session.scalars(select(Delivery.email).where(Delivery.notice_id == withdrawal.id)))
    assert emails == ["customer@example.com", "dpo@northwind-bank.example"]


def test_members_are_computed_from_domains_most_specific_first(world):
    bank = factories.organisation("Northwind Bank", ("bank.example",))
    retail = factories.organisation("Northwind Retail", ("retail.bank.example",))
    for email, status in [("anna@bank.example", "confirmed"), ("ben@eu.bank.example", "confirmed"),
                          ("cara@retail.bank.example", "confirmed"), ("dan@bank.example.evil", "confirmed"),
                          ("eve@bank.example", "pending")]:
        db.session.add(Subscriber(email=email, status=status))
    db.session.commit()
    count, rows = organisations.members(db.session, bank)
    assert count == 2 and [s.email for s in rows] == ["anna@bank.example", "ben@eu.bank.example"]
    assert organisations.members(db.session, retail)[0] == 1


def save(actor, organisation=None, **changes):
    values = dict(name="Northwind Bank", contract_reference="", domains=["northwind-bank.example"],
                  contacts=[], notice_length=30, notice_unit="calendar_days", objection_days=None) | changes
    return organisations.save(db.session, organisation, actor=actor, now=NOW, **values)


def test_saving_refuses_taken_domains_and_names_and_bad_terms(world, people):
    actor = people["approver"]
    first = save(actor)
    db.session.commit()
    other = {"name": "Other", "domains": ["o.example"]}
    for changes, field in [({"name": "Other", "domains": ["northwind-bank.example"]}, "domains"),
                           ({"name": "northwind BANK", "domains": ["other.example"]}, "name"),
                           ({"name": "Other", "domains": []}, "domains"),
                           ({"notice_length": 400}, "notice_length"),
                           ({"notice_unit": None}, "notice_length"),
                           ({"objection_days": 31}, "objection_days")]:
        with pytest.raises(OrganisationError) as refused:
            save(actor, **(other | changes))
        assert refused.value.field == field, changes
        db.session.rollback()
    assert db.session.scalars(select(Organisation.name)).all() == ["Northwind Bank"]
    # Its own domains and name are not "taken" when it is edited.
    save(actor, first, domains=["northwind-bank.example", "nwb.example"], contacts=["dpo@nwb.example"])
    db.session.commit()
    assert [d.domain for d in first.domains] == ["northwind-bank.example", "nwb.example"]


def test_contacts_must_be_addresses_the_provider_accepts():
    assert organisations.parse_contacts("DPO@Bank.example, legal@bank.example\ndpo@bank.example") == [
        "dpo@bank.example", "legal@bank.example"]
    for bad in ("not-an-address", "a@b", "x@[127.0.0.1]"):
        with pytest.raises(OrganisationError) as refused:
            organisations.parse_contacts(bad)
        assert refused.value.field == "contacts"


def test_notice_to_an_organisation_is_complete_when_its_deliveries_settle(world, people):
    bank = factories.organisation(contacts=("dpo@northwind-bank.example",))
    db.session.add(Subscriber(email="anna@northwind-bank.example", status="confirmed"))
    db.session.commit()
    change_set = approved(people, world)
    schedule(change_set, people["second"], CONTRACT_EARLIEST)
    (state,) = organisations.settlement(db.session, change_set)
    assert state.organisation.id == bank.id and state.deliveries == 2 and not state.is_complete
    db.session.execute(Delivery.__table__.update().where(Delivery.email == "anna@northwind-bank.example")
                       .values(status="sent"))
    assert not organisations.settlement(db.session, change_set)[0].is_complete
    db.session.execute(Delivery.__table__.update().where(Delivery.email == "dpo@northwind-bank.example")
                       .values(status="failed"))
    (state,) = organisations.settlement(db.session, change_set)
    assert state.settled == 2 and state.is_complete


def test_a_designated_contact_s_mail_has_no_unsubscribe_link_to_a_subscription(app):
    from registry.notify import messages

    contact, subscriber = messages.recipients([(1, "dpo@northwind-bank.example", None, 3),
                                                (2, "anna@northwind-bank.example", 5, 3)])
    assert contact.headers == {} and set(contact.substitutions.values()) == {"http://localhost/"}
    assert contact.custom_args == {"delivery_id": "1"}
    assert "List-Unsubscribe-Post" in subscriber.headers
