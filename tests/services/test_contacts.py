"""CSV import of customer contacts: row-by-row report, idempotence, files that are not CSV."""

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import Subscriber, Topic
from registry.services import contacts, subscriptions
from registry.services.contacts import ContactsFileError

GOOD = (
    b"Email,Name,Company,Phone\n"
    b"dpo@customer.example,Ana Silva,Customer Ltd,+351 000\n"
    b"  Legal@Other.Example ,,Other GmbH,\n"
    b"\n"
    b"not-an-address,Bob,,\n"
    b"dpo@customer.example,Duplicate,,\n"
    b"too@many.example,a,b,c,d\n"
    b"third@example.com\n"
)


@pytest.fixture
def topics(app):
    rows = [Topic(key="administrative", name="Administrative", is_administrative=True, position=0),
            Topic(key="documents", name="Documents", is_default_on=True, position=1),
            Topic(key="non-material", name="Non-material", is_default_on=False, position=2)]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(Subscriber))


def test_import_reports_each_rejected_row_and_imports_the_rest(topics):
    report = contacts.import_contacts(db.session, GOOD)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    assert [line for line, _reason in report.rejected] == [5, 6, 7]
    reasons = dict(report.rejected)
    assert "has no @" in reasons[5] and "not-an-address" in reasons[5]
    assert "line 2" in reasons[6]
    assert "5 fields" in reasons[7]
    assert report.ignored_columns == ["phone"]
    ana = db.session.scalar(select(Subscriber).where(Subscriber.email == "dpo@customer.example"))
    assert (ana.status, ana.source, ana.name, ana.company) == ("confirmed", "import", "Ana Silva",
                                                               "Customer Ltd")
    assert ana.confirmed_at is not None
    choices = {t.key: on for t, on in subscriptions.choices_of(db.session, ana)}
    assert choices == {"administrative": True, "documents": True, "non-material": False}
    assert db.session.scalar(select(Subscriber.email).where(Subscriber.company == "Other GmbH")) == \
        "legal@other.example"


def test_importing_the_same_file_twice_changes_nothing(topics):
    contacts.import_contacts(db.session, GOOD)
    second = contacts.import_contacts(db.session, GOOD)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 3)
    assert count() == 3


def test_existing_subscribers_are_confirmed_not_duplicated(topics):
    pending = Subscriber(email="third@example.com", status="pending")
    deleted = Subscriber(email="legal@other.example", status="deleted")
    db.session.add_all([pending, deleted])
    db.session.flush()
    report = contacts.import_contacts(db.session, GOOD)
    assert (report.created, report.updated) == (1, 1)
    assert pending.status == "confirmed"
    assert deleted.status == "deleted"
    assert any("deleted their subscription" in reason for _line, reason in report.rejected)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("email\nzoë@example.com\n".encode("latin-1"), "not UTF-8"),
    (b"name,company\nAna,Ltd\n", "header"),
    (b"dpo@customer.example\n", "header"),
    (b'email\n"' + b"a" * 200_000 + b'"\n', "cannot be read"),
    (b"email\n" + b"x@example.com\n" * 400_000, "larger than 5 MB"),
])
def test_unreadable_files_are_refused_as_a_whole(topics, data, message):
    with pytest.raises(ContactsFileError, match=message):
        contacts.import_contacts(db.session, data)
    assert count() == 0


def test_bom_quotes_and_crlf_are_fine(topics):
    data = '\ufeffemail,name\r\n"quoted@example.com","Surname, Given"\r\n'.encode()
    report = contacts.import_contacts(db.session, data)
    assert report.created == 1 and not report.rejected
    assert db.session.scalar(select(Subscriber.name)) == "Surname, Given"


def test_control_characters_and_long_fields(topics):
    data = ("email,name,company\n"
            "a@example.com,Ana\x01Silva,\n"
            f"b@example.com,{'n' * 201},\n").encode()
    report = contacts.import_contacts(db.session, data)
    assert report.created == 1
    assert db.session.scalar(select(Subscriber.name)) == "Ana Silva"
    assert report.rejected == [(3, "name is longer than 200 characters")]


PROVIDER_REFUSES = (
    "email,name,company\n"
    "zoë@example.com,Zoë,\n"
    "double..dot@example.com,,\n"
    "😀@example.com,,\n"
    "\"\"\"quoted\"\"@example.com\",,\n"  # the cell is "quoted"@example.com
    "ip@[192.0.2.1],,\n"
    "user@exämple.pl,Ula,Exämple S.A.\n"
    "ana@example.com,Ana\u202eevil,\n"
    "bob@example.com,Bob,Acme\u200b Ltd\n"
    "ok@example.com,Ok,\n"
).encode()


def test_addresses_the_provider_refuses_and_disguised_names_are_rejected_row_by_row(topics):
    """Issue 9 items 16 and 18: one such row used to fail a whole Mail Send request of 1,000."""
    report = contacts.import_contacts(db.session, PROVIDER_REFUSES)
    reasons = dict(report.rejected)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8, 9]
    assert "U+00EB" in reasons[2] and "'zoë@example.com'" in reasons[2]
    assert "two dots in a row" in reasons[3]
    assert "U+1F600 GRINNING FACE" in reasons[4]
    assert "Quoted addresses" in reasons[5]
    assert "not an IP address" in reasons[6]
    assert reasons[8].startswith("name: ") and "U+202E RIGHT-TO-LEFT OVERRIDE" in reasons[8]
    assert reasons[9].startswith("company: ") and "U+200B ZERO WIDTH SPACE" in reasons[9]
    # The IDN domain is imported in the punycode form the provider expects.
    assert set(db.session.scalars(select(Subscriber.email))) == {"user@xn--exmple-cua.pl", "ok@example.com"}
    assert report.created == 2
