"""Staff text can never pull a per-recipient value into a mail (issue 8 §4).

SendGrid replaces a substitution key wherever it appears; a change title containing the preferences
link's marker was replaced with each recipient's secret link. Every marker, in every staff field a
notice shows, must reach the recipient as text, and each secret link only where the template puts it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import MessageBody, SendAttempt
from registry.notify import messages
from registry.notify.dispatch import Dispatcher
from registry.notify.senders import RecordingSender, personalize
from registry.services import notices, publishing
from tests.services.test_notices import SUBPROCESSOR, make_document, make_subscriber, make_topics


def send_notice(title: str, summary: str, staff: str, *, material: bool = True) -> list:
    """A notice whose every staff-written field carries `staff`; returns what each recipient read."""
    topics = make_topics()
    for topic in topics.values():
        topic.name = f"{topic.name} {staff}"
    make_subscriber("reader@example.com", topics, ("subprocessors", "documents"))
    document = make_document()
    document.title = f"Privacy {staff}"
    change_set = publishing.create_change_set(db.session, title=title, summary=summary, is_material=material)
    publishing.draft_document_version(db.session, change_set, document, source_md="# Privacy",
                                      summary=f"Retention {staff}", is_material=material)
    publishing.draft_subprocessor_change(
        db.session, change_set, "acme-mail", "add", summary=f"Mail {staff}",
        fields={**SUBPROCESSOR, "name": f"Acme {staff}", "purpose": f"Email {staff}",
                "legal_entity": f"Acme {staff} GmbH", "countries": ["DE"]})
    now = now_utc()
    publishing.publish(db.session, change_set, published_at=now, notice_completed_at=None,
                       effective_at=now.replace(year=now.year + 1), now=now)
    notices.start_notice(db.session, change_set, now=now)
    db.session.commit()
    sender = RecordingSender()
    Dispatcher(db.session, sender).drain()
    read = []
    for batch, recipients in sender.requests:
        for r in recipients:
            parts = (batch.subject, batch.text, batch.html)
            read.append((r, [personalize(part, r.substitutions) for part in parts]))
    return read


@pytest.mark.parametrize("marker", ["", *messages.MARKERS])
def test_a_marker_in_staff_text_stays_text(app, marker):
    """The empty marker is the control: plain staff text, the template's own links only."""
    [(recipient, parts)] = send_notice(f"T{marker}T", f"S{marker}S", f"x{marker}y")
    subject, text, html = parts
    assert len(recipient.substitutions) == len(messages.MARKERS)
    for value in recipient.substitutions.values():
        # Each secret link once in the text and once in the HTML footer, never in the subject.
        assert [part.count(value) for part in parts] == [0, 1, 1]
    shown = marker.replace("_", "\uff3f")
    # The staff text is still there, readable (the marker's underscore a fullwidth low line).
    assert f"T{shown}T" in subject and f"S{shown}S" in text and f"Acme x{shown}y" in html
    assert f"Retention x{shown}y" in text and f"Privacy x{shown}y" in html
    # Nothing is left for the provider to replace but the template's own placeholders.
    body = db.session.get(MessageBody, db.session.scalars(select(SendAttempt.message_sha256)).one())
    for key in messages.MARKERS:
        assert (body.subject.count(key), body.text.count(key), body.html.count(key)) == (0, 1, 1)


def test_a_non_material_notice_neutralises_the_topic_name_too(app):
    marker = messages.PREFERENCES_KEY
    [(recipient, parts)] = send_notice("Wording", "Typos", f"x{marker}", material=False)
    link = recipient.substitutions[marker]
    assert [part.count(link) for part in parts] == [0, 1, 1]
    assert 'subscribed to "Document:Privacy Policy x-preferences\uff3furl-"' in parts[1]


def test_neutralise_reaches_nested_staff_text():
    value = {"a": ["-preferences_url-", {"b": "-unsubscribe_url-"}], "n": 3}
    cleaned = messages.neutralise(value)
    assert cleaned["n"] == 3
    flat = repr(cleaned)
    assert all(marker.strip("-") not in flat for marker in messages.MARKERS)
