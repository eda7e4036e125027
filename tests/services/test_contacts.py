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
