"""Issue 9 item 11: the subscribe form must not tell, by its answer or its work, whether an address is known.

The answer is compared byte for byte (status, headers, body); the work is compared as the exact list of
SQL statements each request runs, recorded with a SQLAlchemy event listener (no timing measurements).
"""

import pytest
from sqlalchemy import event, select

from registry.extensions import db
from registry.models import OutgoingMail, Subscriber, Suppression, Topic
from registry.services import subscriptions
from tests.conftest import csrf_token


@pytest.fixture
def addresses(app):
    """One address in each state the form can meet, keyed by that state."""
    db.session.add_all([
        Topic(key="administrative", name="Administrative", is_administrative=True, position=0),
        Topic(key="documents", name="Document updates", position=1),
    ])
    db.session.commit()

    def subscribe(address):
        subscriptions.subscribe(db.session, email=address, topic_keys=["documents"])
        db.session.commit()

    def confirm(address):
        subscribe(address)
        mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == address)
                                 .order_by(OutgoingMail.id.desc()))
        subscriptions.confirm(db.session, mail.context["confirm_url"].rsplit("/", 1)[1])
        db.session.commit()

    subscribe("pending@example.com")
    confirm("active@example.com")
    confirm("gone@example.com")
    gone = db.session.scalar(select(Subscriber).where(Subscriber.email == "gone@example.com"))
    subscriptions.delete_subscription(db.session, gone)
    db.session.add(Suppression(email="bounced@example.com", reason="bounce"))
    for _ in range(subscriptions.MAILS_PER_DAY):
        subscribe("limited@example.com")
    db.session.commit()
    return {"new": "new@example.com", "pending": "pending@example.com", "confirmed": "active@example.com",
            "deleted": "gone@example.com", "suppressed": "bounced@example.com",
            "limited": "limited@example.com"}


EXPECTED = {  # what each request did behind the identical answer
    "new": ("confirm_subscription", "queued"),
    "pending": ("confirm_subscription", "queued"),
    "confirmed": ("subscription_already_active", "queued"),
    "deleted": ("confirm_subscription", "queued"),
    "suppressed": ("confirm_subscription", "dropped"),
    "limited": ("confirm_subscription", "dropped"),
}


def post_recording_statements(client, address, ip):
    statements = []

    def record(_connection, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    data = {"csrf_token": csrf_token(client), "email": address, "topics": ["documents"]}
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.post("/subscriptions/", data=data, environ_base={"REMOTE_ADDR": ip})
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return response, statements


def test_every_path_answers_the_same_bytes_and_runs_the_same_statements(client, addresses):
    answers, work = {}, {}
    for number, (state, address) in enumerate(addresses.items()):
        # Each from its own network, so the per-IP limit's headers start from the same count.
        response, statements = post_recording_statements(client, address, f"10.0.0.{number + 1}")
        # The per-IP limit's reset time and Retry-After follow the clock (a second may tick between two
        # requests), whatever the address: they are left out; every other header must be equal.
        headers = sorted((k, v) for k, v in response.headers.items()
                         if k not in ("X-RateLimit-Reset", "Retry-After"))
        answers[state] = (response.status_code, headers, response.data)
        work[state] = statements
        last = db.session.scalar(select(OutgoingMail).where(OutgoingMail.to == address)
                                 .order_by(OutgoingMail.id.desc()))
        assert (last.template, last.status) == EXPECTED[state], state
        db.session.expire_all()

    assert answers["new"][0] == 200 and b"Check your inbox" in answers["new"][2]
    for state in addresses:
        assert answers[state] == answers["new"], f"the answer for a {state} address differs"
        assert work[state] == work["new"], f"a {state} address runs other statements"
    # The work includes the atomic count, the token row and the mail row, whatever the address.
    for table in ("mail_quotas", "confirmation_tokens", "outgoing_mails"):
        assert sum(s.startswith(f"INSERT INTO {table}") for s in work["new"]) == 1, table
